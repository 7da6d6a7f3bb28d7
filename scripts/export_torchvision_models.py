"""Export torchvision architectures (random weights) to ONNX at AI Hub input sizes."""

import os
import sys
import time

import torch
import torchvision.models as tv

FIT = {
    "resnet18": (lambda: tv.resnet18(), 224),
    "resnet50": (lambda: tv.resnet50(), 224),
    "mobilenet_v3_large": (lambda: tv.mobilenet_v3_large(), 224),
    "mobilenet_v3_small": (lambda: tv.mobilenet_v3_small(), 224),
    "squeezenet1_1": (lambda: tv.squeezenet1_1(), 224),
    "inception_v3": (lambda: tv.inception_v3(aux_logits=True, init_weights=False), 299),
    "regnet": (lambda: tv.regnet_x_3_2gf(), 224),
    "shufflenet_v2": (lambda: tv.shufflenet_v2_x0_5(), 224),
    "convnext_tiny": (lambda: tv.convnext_tiny(), 224),
    "resnext101": (lambda: tv.resnext101_32x8d(), 224),
}
VAL = {
    "resnet101": (lambda: tv.resnet101(), 224),
    "resnext50": (lambda: tv.resnext50_32x4d(), 224),
    "wideresnet50": (lambda: tv.wide_resnet50_2(), 224),
    "mobilenet_v2": (lambda: tv.mobilenet_v2(), 224),
    "densenet121": (lambda: tv.densenet121(), 224),
    "googlenet": (lambda: tv.googlenet(aux_logits=False, init_weights=False), 224),
    "mnasnet05": (lambda: tv.mnasnet0_5(), 224),
    "efficientnet_b0": (lambda: tv.efficientnet_b0(), 224),
    "efficientnet_b4": (lambda: tv.efficientnet_b4(), 380),
    "efficientnet_v2_s": (lambda: tv.efficientnet_v2_s(), 384),
    "regnet_y_800mf": (lambda: tv.regnet_y_800mf(), 224),
    "convnext_base": (lambda: tv.convnext_base(), 224),
    "vit": (lambda: tv.vit_b_16(), 224),
    "swin_tiny": (lambda: tv.swin_t(), 224),
}


class Wrap(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def forward(self, x):
        y = self.net((x - self.mean) / self.std)
        return y[0] if isinstance(y, tuple) else y


def main(out, names):
    torch.manual_seed(0)
    for name in names:
        ctor, size = {**FIT, **VAL}[name]
        path = os.path.join(out, f"{name}.onnx")
        if os.path.exists(path):
            continue
        t = time.time()
        m = Wrap(ctor()).eval()
        torch.onnx.export(
            m,
            torch.rand(1, 3, size, size),
            path,
            opset_version=17,
            input_names=["image"],
            output_names=["logits"],
            do_constant_folding=True,
            dynamo=False,
        )
        print(name, size, f"{time.time() - t:.1f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or list(FIT) + list(VAL))
