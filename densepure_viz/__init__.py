"""densepure-viz: an interactive explorer of DensePure (Xiao et al., ICLR 2023, arXiv 2211.00322)."""
