"""Two-way transformer (segment-anything style): queries and image tokens attend both ways."""

from __future__ import annotations

import torch
from torch import nn

from ciper_ros.model.common import Attention, MLP


class TwoWayBlock(nn.Module):
    """Self-attention of queries, queries -> tokens, MLP, tokens -> queries."""

    def __init__(self, *, dim: int, num_heads: int, mlp_dim: int, downsample_rate: int = 2,
                 skip_first_layer_pe: bool = False) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_q2k = Attention(dim, num_heads, downsample_rate=downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.cross_k2q = Attention(dim, num_heads, downsample_rate=downsample_rate)
        self.norm4 = nn.LayerNorm(dim)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # queries attend to each other
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        # queries attend to aerial tokens
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_q2k(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        # aerial tokens attend to queries
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_k2q(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a final queries -> tokens attention."""

    def __init__(self, *, depth: int, dim: int, num_heads: int, mlp_dim: int,
                 downsample_rate: int = 2) -> None:
        super().__init__()
        self.dim = dim
        self.layers = nn.ModuleList(
            TwoWayBlock(dim=dim, num_heads=num_heads, mlp_dim=mlp_dim,
                        downsample_rate=downsample_rate, skip_first_layer_pe=(i == 0))
            for i in range(depth))
        self.final_attn = Attention(dim, num_heads, downsample_rate=downsample_rate)
        self.norm_final = nn.LayerNorm(dim)

    def forward(self, keys: torch.Tensor, key_pe: torch.Tensor, queries: torch.Tensor,
                query_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run keys (B, N, D) with key_pe (B or 1, N, D) and queries (B, Q, D) with query_pe."""
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_pe, key_pe)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm_final(queries + self.final_attn(q, k, keys))
        return queries, keys
