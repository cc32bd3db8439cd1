"""ogbg: a graph network on ogbg-molpcba (AlgoPerf's ``ogbg`` and its variants)."""
