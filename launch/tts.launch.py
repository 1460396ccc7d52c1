"""Start the qwen3_tts lifecycle node and bring it to active (Humble and later).

    ros2 launch qwen3_tts_ros tts.launch.py [params_file:=...] [namespace:=...] [autostart:=true|false]

Auto-activation uses the event-handler pattern that works on Humble (launch_ros has no `autostart` there):
emit CONFIGURE; when the node goes configuring -> inactive, emit ACTIVATE. `start_state='configuring'` keeps a
later deactivate (deactivating -> inactive) from re-activating the node, and `handle_once=True` (launch's
EventHandler, which launch_ros's OnStateTransition passes it to, on Humble too) makes it act on the first
configure only: after a cleanup, a configure by a person or a lifecycle manager leaves the node inactive, as
they expect. (If the launch's own configure fails, the first later successful configure activates.) With
autostart:=false the node waits unconfigured for a lifecycle manager or `ros2 lifecycle set /qwen3_tts
configure`.
"""

import os

import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState

from launch import LaunchDescription


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("qwen3_tts_ros"), "config", "tts.yaml")
    autostart = LaunchConfiguration("autostart")
    node = LifecycleNode(
        package="qwen3_tts_ros",
        executable="tts_node",
        name="qwen3_tts",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file")],
        output="screen",
    )
    configure = EmitEvent(
        event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE,
        ),
        condition=IfCondition(autostart),
    )
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            start_state="configuring",
            goal_state="inactive",
            handle_once=True,
            entities=[
                LogInfo(msg="qwen3_tts configured; activating"),
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(node),
                        transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE,
                    )
                ),
            ],
        ),
        condition=IfCondition(autostart),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=default_params,
                description="YAML parameters of the node (see config/tts.yaml)",
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the node and its topics"
            ),
            DeclareLaunchArgument(
                "autostart", default_value="true", description="configure and activate the node automatically"
            ),
            activate_when_configured,
            node,
            configure,
        ]
    )
