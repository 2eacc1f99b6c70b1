"""The web console (Eucalyptus 4.0's user console, with 1.x's sign-up): server-rendered pages under
``/console``, served by the API's own application and acting through the EC2 pipeline's handlers and
authorization hook."""

from euca.console.app import PREFIX, Console, create_console, is_console_path
from euca.console.calls import Ec2Calls

__all__ = ["PREFIX", "Console", "Ec2Calls", "create_console", "is_console_path"]
