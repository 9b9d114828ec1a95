"""The MQTT layer: the only package that uses the MQTT client library (aiomqtt over paho)."""

from edge.mqtt.link import MqttLink
from edge.mqtt.values import BrokerEndpoint, Handler, LinkOptions, LinkStats, Outgoing, StatusTopic
from edge.mqtt.wire import tls_context

__all__ = ["BrokerEndpoint", "Handler", "LinkOptions", "LinkStats", "MqttLink", "Outgoing", "StatusTopic",
           "tls_context"]
