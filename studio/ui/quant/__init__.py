"""The Quantization workspace (tensor table, histogram, SQNR charts) over the core QuantPlan."""
