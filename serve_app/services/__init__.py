"""What the routes and the task runner do with images, models and tasks, and where the work runs."""
