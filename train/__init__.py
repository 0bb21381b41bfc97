"""Training pipeline: prepare.py crops a face dataset once; train.py fine-tunes the classifier."""
