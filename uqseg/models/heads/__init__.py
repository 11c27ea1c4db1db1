from .aslp_head import ASLPHeadMixin, aslp_head_class, build_aslp_head

__all__ = ['ASLPHeadMixin', 'aslp_head_class', 'build_aslp_head']
