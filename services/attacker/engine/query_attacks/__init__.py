"""Decision-based attacks: they query the oracle for labels of inputs near each image's decision boundary,
with no substitute and no gradient, advancing every image of a batch together (budget.py)."""
