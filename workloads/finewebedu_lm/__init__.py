"""finewebedu_lm: a decoder-only Transformer on FineWeb-Edu (AlgoPerf's ``finewebedu_lm``)."""
