"""The VGG19 fc7 pathway against torchvision itself (skipped where torchvision is absent,
as in CI; torchvision is needed only by ``data prepare``). Weights are not downloaded: the
architecture is checked with random weights."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

tv = pytest.importorskip("torchvision")
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

from ugach_core.data import features  # noqa: E402


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (256, 256), (640, 427)])
def test_preprocess_matches_torchvision(size):
    """Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize(ImageNet), as torchvision does it."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    ours = features.preprocess(buf.getvalue())
    ref = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        expected = ref(im.convert("RGB")).numpy()
    assert ours.shape == expected.shape == (3, 224, 224)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_vgg19_fc7_is_cut_after_fc7_relu(monkeypatch):
    """vgg19_fc7() keeps fc6, ReLU, Dropout, fc7, ReLU: (B, 3, 224, 224) -> (B, 4096), >= 0."""
    real = tv.models.vgg19
    monkeypatch.setattr(tv.models, "vgg19", lambda weights=None: real(weights=None))
    torch.manual_seed(0)
    net = features.vgg19_fc7()
    assert not net.training
    assert [type(m).__name__ for m in net.classifier] == \
        ["Linear", "ReLU", "Dropout", "Linear", "ReLU"]
    with torch.no_grad():
        x = torch.randn(2, 3, 224, 224)
        out = net(x)
        full = real(weights=None)
        full.load_state_dict(net.state_dict(), strict=False)
        full.eval()
        fc7 = full.classifier[:5](torch.flatten(full.avgpool(full.features(x)), 1))
    assert out.shape == (2, 4096) and (out >= 0).all()
    torch.testing.assert_close(out, fc7)
