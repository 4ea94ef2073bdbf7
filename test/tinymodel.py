"""The tiny CIPER configuration the unit tests build (dim 32, depth 1): one definition."""

# lists, not tuples: the same dict is written to YAML training configs
TINY_MODEL = {'ground_size': [32, 128], 'aerial_size': [64, 64], 'dim': 32, 'depth': 1,
              'num_heads': 2, 'desc_dim': 16, 'decoder_depth': 1, 'decoder_heads': 2,
              'decoder_mlp': 64, 'num_queries': 8, 'anchor_grid': 5, 'anchor_azimuths': 16,
              'anchor_corr_dim': 8}

# the tiny v2 (fine) model: hybrid encoders, a 5 x 5 x 16 score volume
TINY_FINE_MODEL = {**{k: v for k, v in TINY_MODEL.items() if not k.startswith('anchor_')},
                   'fine_dim': 16, 'volume_corr_dim': 8, 'volume_grid': 5,
                   'volume_azimuths': 16}
