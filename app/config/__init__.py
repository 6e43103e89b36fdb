"""The service's configuration: `Settings` from the environment (names in the contract) and
the safe reading of its values. It stands above the other packages: it names their types
(service keys, the token policy, URL patterns), and they receive settings as arguments."""
