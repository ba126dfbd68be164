#!/usr/bin/env python3
"""Checks an rl2-cuda policy export (DESIGN.md section 7) from outside the product.

Reads a safetensors file with an independent numpy reader written from the format's spec (u64
little-endian header length N, N bytes of JSON header, raw little-endian data), cross-checks it against
the reference `safetensors` package when that is importable, rebuilds the GRU policy from its
torch.nn.GRU-named tensors and recomputes the action probabilities of a recorded case:

    r  = sigmoid(W_r u + b_ir + R_r h + b_hr)          gate rows of weight_ih_l0 / weight_hh_l0:
    z  = sigmoid(W_z u + b_iz + R_z h + b_hz)          [r; z; n], each H rows
    n  = tanh(W_n u + b_in + r * (R_n h + b_hn))
    h' = (1 - z) * n + z * h,    p = softmax(head.weight h' + head.bias),    h0 = 0

For bandits and MDPs the GRU's input u is the step's x. A maze export also holds policy.encoder.*
(DESIGN.md section 6; torch Conv2d / Linear names and shapes), and u is the encoder's output:

    x      = [image (C*H*W floats, CHW: channel, row from the top, column), extra (|A| + 2)]
    extra  = [onehot(prev a), prev r, prev d]
    conv(v; w, b)[f, i, j] = b[f] + sum_{c, ky, kx} w[f, c, ky, kx] * v[c, S*i + ky, S*j + kx]
             (torch's conv2d: cross-correlation, stride S = 2, no padding; Ho = (Hi - K) // S + 1)
    f1     = relu(conv(image; conv1.weight [F, C, K, K], conv1.bias [F]))     [F, H1, W1]
    f2     = relu(conv(f1; conv2.weight [F, F, K, K], conv2.bias [F]))        [F, H2, W2]
    u      = [relu(image_fc.weight [U, F*H2*W2] flatten(f2) + image_fc.bias [U]),   flatten: (f, i, j)
              relu(extra_fc.weight [E, |A| + 2] extra + extra_fc.bias [E])]        u: [U + E]

C, F, K, U, E come from the tensor shapes; H x W = 30 x 40 and S = 2 are the maze's documented
observation and stride (no tensor holds them) and are checked against image_fc's fan-in and x's size.

Usage: safetensors_policy.py MODEL.safetensors CASE.json
CASE.json: {"x": T x B x I nested lists, "probs": T x B x A nested lists} (the product's output for x).
Exits 0 when max |probs - ours| <= 1e-5; otherwise (or for a bad file or case) prints why and exits 1.
All arithmetic is float64 (the product's is float32), so the tolerance only has to cover float32 rounding.
"""

import json
import math
import sys

import numpy as np

FORMAT = "rl2-cuda/1"
TOLERANCE = 1e-5
MAX_HEADER = 100_000_000
# The maze encoder's geometry that no tensor shape carries (DESIGN.md section 6): the observation is
# 40 wide x 30 high, and both convolutions have stride 2 and no padding.
MAZE_IMAGE_HW = (30, 40)
CONV_STRIDE = 2

# safetensors dtype -> numpy dtype (little-endian); sub-byte and 8-bit float types have no numpy twin.
DTYPES = {
    "BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"), "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"), "F16": np.dtype("<f2"), "I32": np.dtype("<i4"), "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "U64": np.dtype("<u8"),
}


class FormatError(ValueError):
    """The file is not a valid safetensors file (or not one this script can read)."""


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise FormatError(f"duplicate key {dup!r} in the header")
    return dict(pairs)


def decode_safetensors(data: bytes):
    """Parses safetensors bytes: returns ({name: np.ndarray}, {metadata str: str}).

    Validates as the reference readers do: header size, a JSON object without duplicate keys, entries of
    exactly {dtype, shape, data_offsets}, shape x dtype size == end - begin, and offsets that, sorted,
    tile the data section exactly.
    """
    if len(data) < 8:
        raise FormatError("file too short")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER:
        raise FormatError(f"header too large ({n} bytes)")
    if n > len(data) - 8:
        raise FormatError(f"header length {n} exceeds the file size ({len(data)} bytes)")
    raw = data[8:8 + n]
    if not raw.startswith(b"{"):
        raise FormatError("header does not start with '{'")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise FormatError("header is not a JSON object")
    body = memoryview(data)[8 + n:]

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError("__metadata__ is not an object of strings")

    entries = []
    for name, e in header.items():
        if not name:
            raise FormatError("empty tensor name")
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"tensor {name!r}: entry must have exactly dtype, shape, data_offsets")
        dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in DTYPES:
            raise FormatError(f"tensor {name!r}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise FormatError(f"tensor {name!r}: shape is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
            raise FormatError(f"tensor {name!r}: data_offsets is not [begin, end]")
        begin, end = offsets
        if end > len(body):
            raise FormatError(f"tensor {name!r}: data_offsets point past the end of the file")
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize  # Python ints: no overflow
        if nbytes != end - begin:
            raise FormatError(f"tensor {name!r}: shape {shape} x {dtype} is {nbytes} bytes, offsets span {end - begin}")
        entries.append((begin, end, name, dtype, shape))

    entries.sort()
    expected = 0
    for begin, end, name, _, _ in entries:
        if begin != expected:
            raise FormatError(f"tensor {name!r}: data does not follow the previous tensor's "
                              f"({'overlap' if begin < expected else 'gap'} at byte {begin})")
        expected = end
    if expected != len(body):
        raise FormatError(f"gap of {len(body) - expected} unused bytes after the last tensor")

    tensors = {}
    for begin, end, name, dtype, shape in entries:
        tensors[name] = np.frombuffer(body[begin:end], dtype=DTYPES[dtype]).reshape(shape).copy()
    return tensors, metadata


def read_safetensors(path):
    """Reads PATH with our numpy reader and, when the `safetensors` package is importable, checks that it
    reads the same names, shapes, dtypes, values and metadata. Returns ({name: array}, metadata)."""
    with open(path, "rb") as f:
        tensors, metadata = decode_safetensors(f.read())
    try:
        from safetensors import safe_open
        from safetensors.numpy import load_file
    except ImportError:
        return tensors, metadata
    ref = load_file(path)
    if set(ref) != set(tensors):
        raise AssertionError(f"safetensors reads tensors {sorted(ref)}, ours {sorted(tensors)}")
    for name, a in tensors.items():
        b = ref[name]
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            raise AssertionError(f"tensor {name!r} differs between safetensors and our reader")
    with safe_open(path, framework="numpy") as f:
        if (f.metadata() or {}) != metadata:
            raise AssertionError("__metadata__ differs between safetensors and our reader")
    return tensors, metadata


def _get(tensors, name, shape):
    if name not in tensors:
        raise FormatError(f"missing tensor {name!r}")
    t = tensors[name]
    if t.dtype != np.float32 or t.shape != tuple(shape):
        raise FormatError(f"tensor {name!r} is {t.dtype} {list(t.shape)}, expected float32 {list(shape)}")
    return t.astype(np.float64)


def conv2d(v, w, b, stride):
    """torch.nn.functional.conv2d(v, w, b, stride) without padding or dilation, in float64, one kernel
    tap at a time: out[n, f, i, j] = b[f] + sum_{c, ky, kx} w[f, c, ky, kx] v[n, c, stride i + ky, stride j + kx].

    v: [N, C, Hi, Wi], w: [F, C, K, K], b: [F]. Returns [N, F, Ho, Wo], Ho = (Hi - K) // stride + 1.
    """
    n, _, hi, wi = v.shape
    filters, _, k, _ = w.shape
    ho, wo = (hi - k) // stride + 1, (wi - k) // stride + 1
    out = np.empty((n, filters, ho, wo))
    out[:] = b[None, :, None, None]
    for ky in range(k):
        for kx in range(k):
            tap = v[:, :, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]  # [N, C, Ho, Wo]
            out += np.einsum("fc,nchw->nfhw", w[:, :, ky, kx], tap)
    return out


def relu(a):
    return np.maximum(a, 0.0)


def has_encoder(tensors, prefix="policy"):
    return any(name.startswith(f"{prefix}.encoder.") for name in tensors)


def encoder_features(tensors, x, actions, prefix="policy"):
    """The maze encoder under `prefix.encoder.` (module docstring) for x: [T, B, C*H*W + A + 2].

    conv1.weight: [F, C, K, K], conv1.bias: [F], conv2.weight: [F, F, K, K], conv2.bias: [F],
    image_fc.weight: [U, F*H2*W2], image_fc.bias: [U], extra_fc.weight: [E, A + 2], extra_fc.bias: [E].
    Returns the GRU's input u: [T, B, U + E], float64.
    """
    pre = f"{prefix}.encoder"
    c1 = tensors.get(f"{pre}.conv1.weight")
    if c1 is None or c1.ndim != 4 or c1.shape[2] != c1.shape[3]:
        raise FormatError(f"missing or malformed tensor {pre}.conv1.weight, expected [F, C, K, K]")
    filters, channels, k, _ = c1.shape
    (height, width), s = MAZE_IMAGE_HW, CONV_STRIDE
    h1, w1 = (height - k) // s + 1, (width - k) // s + 1
    if height < k or width < k or h1 < k or w1 < k:
        raise FormatError(f"{pre}.conv1.weight has {k}x{k} kernels, too large for two convolutions of a "
                          f"{height}x{width} image")
    h2, w2 = (h1 - k) // s + 1, (w1 - k) // s + 1
    flat = filters * h2 * w2
    conv1_w = _get(tensors, f"{pre}.conv1.weight", (filters, channels, k, k))
    conv1_b = _get(tensors, f"{pre}.conv1.bias", (filters,))
    conv2_w = _get(tensors, f"{pre}.conv2.weight", (filters, filters, k, k))
    conv2_b = _get(tensors, f"{pre}.conv2.bias", (filters,))
    img = tensors.get(f"{pre}.image_fc.weight")
    if img is None or img.ndim != 2:
        raise FormatError(f"missing or malformed tensor {pre}.image_fc.weight, expected [U, {flat}]")
    if img.shape[1] != flat:
        raise FormatError(f"{pre}.image_fc.weight has shape {list(img.shape)}, expected [U, {flat}] "
                          f"(F*H2*W2 = {filters}*{h2}*{w2} for a {channels}x{height}x{width} image, "
                          f"{k}x{k} kernels, stride {s})")
    units = img.shape[0]
    image_fc_w = _get(tensors, f"{pre}.image_fc.weight", (units, flat))
    image_fc_b = _get(tensors, f"{pre}.image_fc.bias", (units,))
    ext = tensors.get(f"{pre}.extra_fc.weight")
    extra_in = actions + 2
    if ext is None or ext.ndim != 2:
        raise FormatError(f"missing or malformed tensor {pre}.extra_fc.weight, expected [E, {extra_in}]")
    extra_fc_w = _get(tensors, f"{pre}.extra_fc.weight", (ext.shape[0], extra_in))
    extra_fc_b = _get(tensors, f"{pre}.extra_fc.bias", (ext.shape[0],))

    x = np.asarray(x, dtype=np.float64)
    image_size = channels * height * width
    if x.ndim != 3 or x.shape[2] != image_size + extra_in:
        raise FormatError(f"x has shape {list(x.shape)}, expected [T, B, {image_size + extra_in}] "
                          f"({channels}x{height}x{width} image + {extra_in} extra inputs)")
    steps, batch, _ = x.shape
    images = x[:, :, :image_size].reshape(steps * batch, channels, height, width)  # CHW per step
    extra = x[:, :, image_size:].reshape(steps * batch, extra_in)
    f1 = relu(conv2d(images, conv1_w, conv1_b, s))                 # [N, F, H1, W1]
    f2 = relu(conv2d(f1, conv2_w, conv2_b, s))                     # [N, F, H2, W2]
    y_img = relu(f2.reshape(steps * batch, flat) @ image_fc_w.T + image_fc_b)  # [N, U]
    y_ext = relu(extra @ extra_fc_w.T + extra_fc_b)                            # [N, E]
    return np.concatenate([y_img, y_ext], axis=1).reshape(steps, batch, -1)


def policy_probs(tensors, x, prefix="policy"):
    """Action probabilities of the policy under `prefix.` for inputs x: [T, B, I], h0 = 0; when the file
    holds `prefix.encoder.*` (the maze), x goes through encoder_features first.

    weight_ih_l0: [3H, I], weight_hh_l0: [3H, H], bias_ih_l0 / bias_hh_l0: [3H] (rows r, z, n),
    head.weight: [A, H], head.bias: [A]. Computed in float64. Returns probs: [T, B, A].
    """
    w_ih = tensors[f"{prefix}.gru.weight_ih_l0"]
    if w_ih.ndim != 2 or w_ih.shape[0] % 3 != 0:
        raise FormatError(f"{prefix}.gru.weight_ih_l0 has shape {list(w_ih.shape)}, expected [3H, I]")
    h3, inputs = w_ih.shape
    hidden = h3 // 3
    w_ih = _get(tensors, f"{prefix}.gru.weight_ih_l0", (h3, inputs))
    w_hh = _get(tensors, f"{prefix}.gru.weight_hh_l0", (h3, hidden))
    b_ih = _get(tensors, f"{prefix}.gru.bias_ih_l0", (h3,))
    b_hh = _get(tensors, f"{prefix}.gru.bias_hh_l0", (h3,))
    head_w = tensors.get(f"{prefix}.head.weight")
    if head_w is None or head_w.ndim != 2:
        raise FormatError(f"missing or malformed tensor {prefix}.head.weight, expected [A, H]")
    actions = head_w.shape[0]
    head_w = _get(tensors, f"{prefix}.head.weight", (actions, hidden))
    head_b = _get(tensors, f"{prefix}.head.bias", (actions,))

    if has_encoder(tensors, prefix):
        x = encoder_features(tensors, x, actions, prefix)
        if x.shape[2] != inputs:
            raise FormatError(f"{prefix}.encoder gives {x.shape[2]} features, {prefix}.gru.weight_ih_l0 "
                              f"takes {inputs}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != inputs:
        raise FormatError(f"x has shape {list(x.shape)}, expected [T, B, {inputs}]")
    steps, batch, _ = x.shape
    h = np.zeros((batch, hidden))
    probs = np.empty((steps, batch, actions))
    for t in range(steps):
        gi = x[t] @ w_ih.T + b_ih  # [B, 3H]
        gh = h @ w_hh.T + b_hh     # [B, 3H]
        r = 1.0 / (1.0 + np.exp(-(gi[:, :hidden] + gh[:, :hidden])))
        z = 1.0 / (1.0 + np.exp(-(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])))
        n = np.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        h = (1.0 - z) * n + z * h
        logits = h @ head_w.T + head_b  # [B, A]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[t] = e / e.sum(axis=1, keepdims=True)
    return probs


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} MODEL.safetensors CASE.json", file=sys.stderr)
        return 2
    model_path, case_path = argv[1], argv[2]
    try:
        tensors, metadata = read_safetensors(model_path)
        if metadata.get("format") != FORMAT:
            raise FormatError(f"__metadata__ format is {metadata.get('format')!r}, expected {FORMAT!r}")
        with open(case_path) as f:
            case = json.load(f)
        ours = np.asarray(case["probs"], dtype=np.float64)
        ref = policy_probs(tensors, case["x"])
    except AssertionError as e:
        print(f"FAIL: {model_path}: {e}")
        return 1
    except (OSError, KeyError, TypeError, ValueError) as e:
        print(f"FAIL: {model_path}: {type(e).__name__}: {e}")
        return 1
    if ours.shape != ref.shape:
        print(f"probs has shape {list(ours.shape)}, the model gives {list(ref.shape)}")
        return 1
    err = float(np.max(np.abs(ours - ref))) if ours.size else 0.0
    if not err <= TOLERANCE:  # also catches NaN
        print(f"FAIL: max |p_ours - p_numpy| = {err:.3e} > {TOLERANCE:g}")
        return 1
    net = "encoder + GRU" if has_encoder(tensors) else "GRU"
    print(f"OK ({net}): {ref.shape[0]} steps x {ref.shape[1]} trials x {ref.shape[2]} actions, "
          f"max |p_ours - p_numpy| = {err:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
