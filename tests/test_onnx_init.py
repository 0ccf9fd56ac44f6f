"""Starting training from an exported ONNX classifier (openfer.train.onnx_init): exact weights, frozen batch norms."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training from ONNX needs the [train] extra (PyTorch)")

from test_train import make_npz  # noqa: E402

from openfer.errors import UsageError  # noqa: E402
from openfer.nn.archs import build  # noqa: E402
from openfer.train.export import export_onnx  # noqa: E402
from openfer.train.loop import TrainConfig, prior_offset, train  # noqa: E402
from openfer.train.onnx_init import module_path, onnx_state  # noqa: E402
from openfer.zoo.registry import resolve_model  # noqa: E402


def test_module_path_follows_the_traced_scopes():
    assert module_path("/net/stem/stem.0/stem.0.0/Conv") == "stem.0.0"
    assert module_path("m0_/net/members.1/stages/stages.2/body/body.3/Conv") == "m0_.members.1.stages.2.body.3"
    assert module_path("m0_/net/members.1/stem/stem.0/stem.0.0_1/Conv") is None  # the mirrored pass
    assert module_path("/Softmax") is None


def test_a_trained_network_comes_back_from_its_export_and_trains_on(tmp_path):
    """The export folds batch norms into the convolutions; the rebuilt network gives the checkpoint's logits (its
    balanced objective's prior offset taken out, as init_checkpoint does), and a second stage from the .onnx
    trains with its batch norms frozen and records where it started."""
    data = make_npz(tmp_path / "toy.npz", n_train=96, n_test=8)
    small = {"arch_kwargs": {"width": 0.25}, "epochs": 1, "batch_size": 16, "val_fraction": 0.25, "threads": 1,
             "bf16": False, "balance": "logit_adjust"}
    stage1 = TrainConfig(**small, tta="flip")
    train(stage1, tmp_path / "s1", data)
    export_onnx(tmp_path / "s1" / "best.pt", tmp_path / "m.onnx")
    best = torch.load(tmp_path / "s1" / "best.pt", weights_only=False)
    trained = build("fer_resnet", 8, width=0.25)
    trained.load_state_dict(best["ema"])
    assert trained.stem[0][1].running_var.std() > 0, "the toy run must leave real batch-norm statistics to fold"

    rebuilt = build("fer_resnet", 8, width=0.25)
    rebuilt.load_state_dict(onnx_state(rebuilt, tmp_path / "m.onnx"))
    x = torch.randn(5, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), trained.eval()(x), atol=1e-4, rtol=1e-4)
    with pytest.raises(UsageError, match="networks in the file"):
        onnx_state(build("fer_resnet", 8, width=0.25), tmp_path / "m.onnx", member="m0_.members.0")
    with pytest.raises(UsageError, match="layer stem.0.0"):
        onnx_state(build("fer_resnet", 8, width=0.5), tmp_path / "m.onnx")  # another width

    stage2 = TrainConfig(**small, init_checkpoint=str(tmp_path / "m.onnx"), lr=1e-2)
    train(stage2, tmp_path / "s2", data)
    after = torch.load(tmp_path / "s2" / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "s2" / "last.pt", weights_only=False)
    source = after["pretrained"]
    assert source["init_onnx"] == str(tmp_path / "m.onnx") and len(source["init_sha256"]) == 64
    for key, value in last["model"].items():
        if key.endswith("running_mean"):  # frozen: still the pass-through statistics the import set
            assert not value.abs().any(), key
    folded = onnx_state(build("fer_resnet", 8, width=0.25), tmp_path / "m.onnx")["stem.0.0.weight"]
    assert (last["model"]["stem.0.0.weight"] - folded).abs().max() > 0, "the second stage must train the import"
    start = build("fer_resnet", 8, width=0.25)
    from openfer.train.loop import init_from_onnx

    init_from_onnx(start, stage2)
    offset = prior_offset(stage2, np.asarray(best["class_prior"]))
    torch.testing.assert_close(start.state_dict()["head.3.bias"] + offset, best["ema"]["head.3.bias"])


def test_each_network_of_a_shipped_ensemble_is_rebuilt_exactly():
    """One network of `default-v1` (five networks in three merged files, float16 weights), against that
    network's own logits inside the shipped graph."""
    import onnx
    import onnxruntime as ort

    _, path = resolve_model("default-v1")
    proto = onnx.load(str(path))
    scope = "m0_/net/members.1/head/head.3/Gemm_output_0"
    proto.graph.output.append(onnx.helper.make_tensor_value_info(scope, onnx.TensorProto.FLOAT, None))
    faces = np.random.default_rng(0).uniform(0, 255, (4, 1, 48, 48)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        [scope], {"faces": faces})[0]
    net = build("fer_resnet", 8)
    net.load_state_dict(onnx_state(net, path, "m0_.members.1"))
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(faces) / 127.5 - 1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
