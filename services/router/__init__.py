"""The router: gRPC `palm.router.v1.Router` over one base model and LoRA members.

config.py   RouterConfig, read once at start-up
engine.py   the loop that owns the model and batches requests across members
reload.py   takes up new portfolio versions from Redis and the store
server.py   the gRPC servicer, health, reflection, auth, metrics, shutdown
"""
