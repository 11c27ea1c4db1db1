from .sc_bce_loss import SCBCELoss, aslp_gradient, perturb_labels

__all__ = ['SCBCELoss', 'aslp_gradient', 'perturb_labels']
