"""Phase 5: five priority levels without starvation, and a supervised pool of worker processes."""
