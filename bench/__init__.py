"""The benchmark: the gateway against the limit of its own framework and against a peer.

``python -m bench.run`` (``make bench``) starts memcached, the emulator, the gateway and the
peer as processes on loopback ports, drives them with wrk and prints one table; see
``bench/run.py`` and the README's "Performance" section.
"""
