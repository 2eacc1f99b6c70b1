"""A real, tiny Linux guest for the tests: an image built from Debian packages, and libvirtd in a namespace."""
