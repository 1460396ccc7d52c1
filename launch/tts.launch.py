"""Start the qwen3_tts lifecycle node and bring it to active (Humble and later).

    ros2 launch qwen3_tts_ros tts.launch.py [params_file:=...] [namespace:=...] [autostart:=true|false]
        [model:=...] [device:=...] [speaker:=...] [language:=...] [log_level:=info] [respawn:=false]
        [respawn_delay:=2.0]

model, device, speaker and language set those node parameters over the params file; left "" they leave the
file's values (qwen3_tts_ros/launch_args.py, where these arguments are defined and tested).

Auto-activation uses the event-handler pattern that works on Humble (launch_ros has no `autostart` there):
emit CONFIGURE; when the node goes configuring -> inactive, emit ACTIVATE.
`start_state='configuring'` keeps a later deactivate (deactivating -> inactive) from re-activating the node,
and `handle_once=True` (launch's EventHandler, which launch_ros's OnStateTransition passes it to, on Humble
too) makes it act on the first configure only: after a cleanup, a configure by a person or a lifecycle
manager leaves the node inactive, as they expect. (If the launch's own configure fails, the first later
successful configure activates.) With respawn:=true a process that died is started again after
respawn_delay seconds, and each process configures and activates itself (the node's autostart parameter):
a lifecycle request from launch could reach the dead process, whose service DDS still lists for a while
after a crash, and be lost (seen with SIGKILL: the new process stayed unconfigured).
With autostart:=false the node waits unconfigured for a lifecycle manager or `ros2 lifecycle set /qwen3_tts
configure` (and says so in its log).
"""

import os

import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState

from launch import LaunchDescription
from qwen3_tts_ros import launch_args as A


def _node_and_transitions(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in _argument_names()}
    autostart, respawn = A.boolean("autostart", value["autostart"]), A.boolean("respawn", value["respawn"])
    overrides = A.parameter_overrides(value)
    if autostart and respawn:
        overrides["autostart"] = True  # each process configures and activates itself (module docstring)
    node = LifecycleNode(
        package="qwen3_tts_ros",
        executable="tts_node",
        name="qwen3_tts",
        namespace=value["namespace"],
        parameters=[value["params_file"], *([overrides] if overrides else [])],
        arguments=A.log_level_arguments(value["log_level"]),
        respawn=respawn,
        respawn_delay=A.respawn_delay(value["respawn_delay"]),
        output="screen",
    )
    if not autostart or respawn:
        return [node]

    def change_state(transition_id):
        return EmitEvent(
            event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id)
        )

    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            start_state="configuring",
            goal_state="inactive",
            handle_once=True,
            entities=[
                LogInfo(msg="qwen3_tts configured; activating"),
                change_state(lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE),
            ],
        )
    )
    return [activate_when_configured, node, change_state(lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE)]


def _arguments():
    default_params = os.path.join(get_package_share_directory("qwen3_tts_ros"), "config", "tts.yaml")
    return [
        ("params_file", default_params, "YAML parameters of the node (see config/tts.yaml)"),
        ("namespace", "", "namespace of the node and its topics"),
        ("autostart", "true", "configure and activate the node automatically"),
        *((arg, "", description) for arg, _, description in A.PARAMETER_ARGUMENTS),
        ("log_level", "info", "log level of the node: " + ", ".join(A.LOG_LEVELS)),
        ("respawn", "false", "start the node again when its process dies (then configure and activate it)"),
        ("respawn_delay", "2.0", "seconds before a respawn"),
    ]


def _argument_names():
    return [name for name, _, _ in _arguments()]


def generate_launch_description():
    return LaunchDescription(
        [
            *(DeclareLaunchArgument(name, default_value=default, description=description)
              for name, default, description in _arguments()),
            OpaqueFunction(function=_node_and_transitions),
        ]
    )
