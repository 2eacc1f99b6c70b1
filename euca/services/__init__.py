"""The cloud controller's services, one module per resource, composed in ``cloud.Cloud``."""
