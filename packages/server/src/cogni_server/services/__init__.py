"""Use cases behind the routes: creating and cancelling runs, waiting on them, thread state."""
