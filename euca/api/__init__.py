"""The EC2 Query API: request parsing and response serialization from botocore's model, errors, the app."""
