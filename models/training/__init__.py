"""Training and evaluation of the type-model kinds (after torchvision's references/detection)."""
