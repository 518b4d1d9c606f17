"""cogni_graphs: the graph catalog, the graphs, their tools and the LiteLLM-bound LLM factory."""

from cogni_graphs.catalog import CATALOG, GRAPH_PROVIDER, CatalogEntry, UnknownGraph, catalog_entry, compile_graph

__all__ = ["CATALOG", "GRAPH_PROVIDER", "CatalogEntry", "UnknownGraph", "catalog_entry", "compile_graph"]
