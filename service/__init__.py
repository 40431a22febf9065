"""fastapi-app: a FastAPI reference service built to run on Kubernetes."""
