"""CIM (Complete Instances Mining): weakly supervised instance segmentation from image-level
labels and mask proposals. Pseudo-labelling rules are plain functions in
:mod:`.pseudo_labels` and :mod:`.pcl`; the network in :mod:`.model`; training in :mod:`.train`."""
