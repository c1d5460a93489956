"""Probes that map the scope of CUDA findings (printed, for the GPU run's log).

- nll_loss / cross_entropy, reduction='mean' over targets that are all ignored: CPU gives NaN
  (0/0); on CUDA, which dtypes and input ranks give 0 instead?
- binary_cross_entropy float16 gradient at a subnormal p: CPU vs CUDA.
"""

import torch
import torch.nn.functional as F


def main() -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("all-ignored mean (expected NaN):")
    for fn in (F.nll_loss, F.cross_entropy):
        for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
            for shape, tshape in (((3,), ()), ((2, 3), (2,)), ((2, 3, 2), (2, 2))):
                row = []
                for dev in devices:
                    x = torch.zeros(shape, dtype=dtype, device=dev)
                    t = torch.full(tshape, -100, dtype=torch.long, device=dev)
                    row.append(f"{dev}={float(fn(x, t)):g}")
                print(f"  {fn.__name__:13s} {dtype!s:15s} input {shape!s:10s} " + " ".join(row))
    print("binary_cross_entropy float16 gradient, p = 2^-23, y = 0, grad 0.5479 "
          "(exact 0.5479):")
    for dev in devices:
        p = torch.tensor([2.0**-23], dtype=torch.float16, device=dev, requires_grad=True)
        y = torch.zeros(1, dtype=torch.float16, device=dev)
        out = F.binary_cross_entropy(p, y, reduction="none")
        (g,) = torch.autograd.grad(out, p, torch.full_like(out, 0.5479))
        print(f"  {dev}: {float(g):g}")


if __name__ == "__main__":
    main()
