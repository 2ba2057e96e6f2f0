"""One cell on several ranks (`train.distributed`): the process group, the split of each global batch, the loss
computed from every rank's share, DDP or FSDP2 around the model, the evaluation split over ranks, and the ranks'
measurements merged into the one row rank 0 writes."""
