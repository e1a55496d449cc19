"""The Celery side of the request path: a worker beside each vLLM replica takes the model's
requests from its queues and calls the replica; a client helper submits and waits; a stand-in
OpenAI-compatible server plays the replica in tests and the demo.

The scaler never imports this package (it only reads queue depth); this package never imports
the scaler.
"""
