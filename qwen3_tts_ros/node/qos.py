"""QoS of the say action's services, shared by the node's server and the client (no torch import here)."""

from rclpy.qos import QoSProfile, qos_profile_services_default

# With rclpy's default depth (10) a burst of goal requests lost all but the first few inside DDS before the
# server took them (measured: 50 goals sent at once -> 16 answered, the rest never).
REQUEST_DEPTH = 1000
ACTION_REQUESTS = QoSProfile(
    depth=REQUEST_DEPTH,
    history=qos_profile_services_default.history,
    reliability=qos_profile_services_default.reliability,
    durability=qos_profile_services_default.durability,
)
