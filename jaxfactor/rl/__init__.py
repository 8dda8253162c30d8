"""Pure RL maths: targets, action selection, schedules."""
