"""Transfer attacks beyond FGSM, crafted white-box on the substitute (or an ensemble of substitutes, one module
averaging their logits) and measured on the oracle beside random noise of the same size in the same norm:
PGD and I-FGSM (pgd.py), MI-FGSM (mifgsm.py), DI-FGSM (difgsm.py), R+FGSM (rfgsm.py), on one loop and plug-in
base (iterative.py) and their losses, cross-entropy or Carlini & Wagner's margin (losses.py)."""
