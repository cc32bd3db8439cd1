"""The digits dev workload: scikit-learn's bundled 8x8 digits, an MLP, no download."""
