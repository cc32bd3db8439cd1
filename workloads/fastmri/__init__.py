"""fastmri: a U-Net reconstructing knee MRI slices (AlgoPerf's ``fastmri`` and its variants)."""
