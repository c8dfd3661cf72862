"""The core every phase folder carries (store, state machine), tested on each phase's own copy."""
