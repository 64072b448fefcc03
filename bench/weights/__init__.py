"""Official checkpoints: their names mapped onto ours (formats/), import into run folders, export back."""
