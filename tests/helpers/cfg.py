"""Demo configs pointed at the small test copy of the demo data, with short schedules."""
import os.path as osp

from mmengine.config import Config

#: The repository root (configs/, tools/, benchmarks/ are read from here).
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def demo_cfg(data_root: str, work_dir: str, max_iters: int = 4, val_interval: int = 1000,
             ckpt_interval: int = 1000, config: str = 'configs/bce_sod_demo.py') -> Config:
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.work_dir = work_dir
    cfg.train_dataloader.batch_size = 4
    cfg.train_dataloader.dataset.data_root = osp.join(data_root, 'DUTS-TR')
    cfg.val_dataloader.dataset.data_root = osp.join(data_root, 'DUTS-TR')
    for ds, sub in zip(cfg.test_dataloader.dataset.datasets, ('DUTS-TE', 'ECSSD', 'DTD')):
        ds.data_root = osp.join(data_root, sub)
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = val_interval
    cfg.default_hooks.checkpoint.interval = ckpt_interval
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    return cfg


def shapes_cfg(data_root: str, work_dir: str, config: str = 'configs/ce_shapes_demo.py', max_iters: int = 2,
               val_interval: int = 1000, ckpt_interval: int = 1000) -> Config:
    """A shapes-demo config (multi-class) on the small test copy of the shapes data."""
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.work_dir = work_dir
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.val_dataloader.dataset.data_root = data_root
    for ds in cfg.test_dataloader.dataset.datasets:
        ds.data_root = data_root
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = val_interval
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = ckpt_interval
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.default_hooks.logger.interval = 1
    return cfg
