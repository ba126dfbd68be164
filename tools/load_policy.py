#!/usr/bin/env python3
"""Loads an rl2-cuda policy export (policy.safetensors) into PyTorch and plays one trial.

    python3 load_policy.py policy.safetensors                      # torch: one trial of the policy's task
    python3 load_policy.py policy.safetensors --backend numpy      # the same network in numpy (no torch)
    python3 load_policy.py policy.safetensors --case case.json     # replay recorded inputs, compare probs

The export names its tensors as torch does (DESIGN.md section 7), so the modules take them as they are:

    policy.gru.*           torch.nn.GRU(I, H)         weight_ih_l0 [3H, I], weight_hh_l0 [3H, H], bias_ih_l0,
                                                      bias_hh_l0 [3H]; gate rows r, z, n
    policy.head.*          torch.nn.Linear(H, A)      logits = head(h); probs = softmax(logits)
    policy.encoder.*       (maze only) conv1 = Conv2d(C, F, K, stride=2), conv2 = Conv2d(F, F, K, stride=2),
                           image_fc = Linear(F*H2*W2, U), extra_fc = Linear(A + 2, E)

A step's input x is [obs, onehot(prev action), prev reward, prev done] (the file's metadata `input_layout`;
obs is empty for bandits, onehot(state) for MDPs, and the maze's 3x30x40 CHW image in [-1, 1]); the GRU
state is zero at the start of a trial and carried across its episodes. For the maze the GRU's input is

    u = [relu(image_fc(flatten(relu(conv2(relu(conv1(image))))))), relu(extra_fc(extra))]

Playing a trial: bandits (p_i ~ U[0, 1], one pull per episode) and tabular MDPs (mean rewards ~ N(1, 1),
unit reward noise, transitions ~ Dirichlet(1), every episode starts in state 0) are simulated here with
numpy (DESIGN.md section 2; the product's counter-based random numbers are not reproduced). The maze's
simulator is not in Python: replay its recorded inputs with --case, or watch it with `rl2-cuda eval
--video`. torch is imported only for --backend torch; the numpy backend computes the same network in
float64 and is what rl2-cuda's tests run (tests/interop/).

--case CASE.json: {"x": T x B x I nested lists, "probs": T x B x A} (tests/interop/interop_case.cpp writes
one): runs the B trials' T steps from h = 0, prints the largest |p - probs| and exits 1 above --tolerance.
Exit status 2: a bad file or request, with one line on stderr.
"""

import argparse
import json
import math
import sys

import numpy as np

FORMAT = "rl2-cuda/1"
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
    """The file is not a valid safetensors file, or not an rl2-cuda policy this script can read."""


# ---- safetensors, read from the format's spec ----------------------------------------------------------

def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise FormatError(f"duplicate key {dup!r} in the header")
    return dict(pairs)


def decode_safetensors(data: bytes):
    """Parses safetensors bytes (u64 little-endian header length N, N bytes of JSON header, raw
    little-endian data): returns ({name: np.ndarray}, {metadata str: str}).

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
    """({name: array}, metadata) of the safetensors file at PATH (decode_safetensors)."""
    with open(path, "rb") as f:
        return decode_safetensors(f.read())


def read_policy(path):
    """(tensors, metadata, config) of an rl2-cuda export or checkpoint; config is the run's resolved
    configuration (metadata "config"). FormatError when the file is not one this script reads."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise FormatError(f"__metadata__ format is {metadata.get('format')!r}, expected {FORMAT!r}")
    try:
        config = json.loads(metadata["config"])
    except (KeyError, json.JSONDecodeError):
        raise FormatError("__metadata__ has no valid config") from None
    return tensors, metadata, config


# ---- the network's sizes, from its tensors -------------------------------------------------------------

def _get(tensors, name, shape):
    if name not in tensors:
        raise FormatError(f"missing tensor {name!r}")
    t = tensors[name]
    if t.dtype != np.float32 or t.shape != tuple(shape):
        raise FormatError(f"tensor {name!r} is {t.dtype} {list(t.shape)}, expected float32 {list(shape)}")
    return t


def has_encoder(tensors, prefix="policy"):
    return any(name.startswith(f"{prefix}.encoder.") for name in tensors)


def network_tensors(tensors, prefix="policy"):
    """The network under `prefix.`, shape-checked: (dims, {name without the prefix: float32 array}).
    dims: inputs (the step input x's size), gru_inputs I, hidden H, actions A, and for the maze channels C,
    filters F, kernel K, image_hw, flat (F*H2*W2), units U, extra_units E, extra_in (A + 2)."""
    w_ih = tensors.get(f"{prefix}.gru.weight_ih_l0")
    if w_ih is None or w_ih.ndim != 2 or w_ih.shape[0] % 3 != 0:
        raise FormatError(f"missing or malformed tensor {prefix}.gru.weight_ih_l0, expected [3H, I]")
    h3, gru_inputs = w_ih.shape
    hidden = h3 // 3
    head_w = tensors.get(f"{prefix}.head.weight")
    if head_w is None or head_w.ndim != 2:
        raise FormatError(f"missing or malformed tensor {prefix}.head.weight, expected [A, H]")
    actions = head_w.shape[0]
    shapes = {"gru.weight_ih_l0": (h3, gru_inputs), "gru.weight_hh_l0": (h3, hidden), "gru.bias_ih_l0": (h3,),
              "gru.bias_hh_l0": (h3,), "head.weight": (actions, hidden), "head.bias": (actions,)}
    dims = {"gru_inputs": gru_inputs, "hidden": hidden, "actions": actions, "inputs": gru_inputs}
    if has_encoder(tensors, prefix):
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
        img = tensors.get(f"{pre}.image_fc.weight")
        if img is None or img.ndim != 2 or img.shape[1] != flat:
            raise FormatError(f"missing or malformed tensor {pre}.image_fc.weight, expected [U, {flat}] "
                              f"(F*H2*W2 = {filters}*{h2}*{w2} for a {channels}x{height}x{width} image, "
                              f"{k}x{k} kernels, stride {s})")
        ext = tensors.get(f"{pre}.extra_fc.weight")
        if ext is None or ext.ndim != 2:
            raise FormatError(f"missing or malformed tensor {pre}.extra_fc.weight, expected [E, {actions + 2}]")
        units, extra_units, extra_in = img.shape[0], ext.shape[0], actions + 2
        if units + extra_units != gru_inputs:
            raise FormatError(f"{pre} gives {units + extra_units} features, {prefix}.gru.weight_ih_l0 takes "
                              f"{gru_inputs}")
        shapes.update({"encoder.conv1.weight": (filters, channels, k, k), "encoder.conv1.bias": (filters,),
                       "encoder.conv2.weight": (filters, filters, k, k), "encoder.conv2.bias": (filters,),
                       "encoder.image_fc.weight": (units, flat), "encoder.image_fc.bias": (units,),
                       "encoder.extra_fc.weight": (extra_units, extra_in), "encoder.extra_fc.bias": (extra_units,)})
        dims.update(channels=channels, filters=filters, kernel=k, image_hw=(height, width), flat=flat, units=units,
                    extra_units=extra_units, extra_in=extra_in, inputs=channels * height * width + extra_in)
    return dims, {name: _get(tensors, f"{prefix}.{name}", shape) for name, shape in shapes.items()}


# ---- the numpy twin (float64) --------------------------------------------------------------------------

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


class NumpyPolicy:
    """The policy of an export in float64 numpy, one step at a time, exactly as the torch modules of
    TorchPolicy compute it (torch.nn.GRU's equations with gate rows r, z, n):

        r  = sigmoid(W_r u + b_ir + R_r h + b_hr)        z = sigmoid(W_z u + b_iz + R_z h + b_hz)
        n  = tanh(W_n u + b_in + r * (R_n h + b_hn))     h' = (1 - z) * n + z * h
        p  = softmax(head.weight h' + head.bias)
    """

    def __init__(self, tensors, prefix="policy"):
        self.dims, t = network_tensors(tensors, prefix)
        self.t = {name: a.astype(np.float64) for name, a in t.items()}

    def initial_state(self, batch):
        return np.zeros((batch, self.dims["hidden"]))

    def gru_input(self, x):
        """u [B, I] for step inputs x [B, inputs]: x itself, or the maze encoder's features."""
        d, t = self.dims, self.t
        if "channels" not in d:
            return x
        c, (height, width) = d["channels"], d["image_hw"]
        image = x[:, :c * height * width].reshape(-1, c, height, width)  # CHW per step
        f1 = relu(conv2d(image, t["encoder.conv1.weight"], t["encoder.conv1.bias"], CONV_STRIDE))
        f2 = relu(conv2d(f1, t["encoder.conv2.weight"], t["encoder.conv2.bias"], CONV_STRIDE))
        y_img = relu(f2.reshape(len(x), d["flat"]) @ t["encoder.image_fc.weight"].T + t["encoder.image_fc.bias"])
        y_ext = relu(x[:, c * height * width:] @ t["encoder.extra_fc.weight"].T + t["encoder.extra_fc.bias"])
        return np.concatenate([y_img, y_ext], axis=1)

    def step(self, x, h):
        """x: [B, inputs], h: [B, H] -> (probs [B, A], h' [B, H])."""
        t, hidden = self.t, self.dims["hidden"]
        gi = self.gru_input(np.asarray(x, dtype=np.float64)) @ t["gru.weight_ih_l0"].T + t["gru.bias_ih_l0"]
        gh = h @ t["gru.weight_hh_l0"].T + t["gru.bias_hh_l0"]
        r = 1.0 / (1.0 + np.exp(-(gi[:, :hidden] + gh[:, :hidden])))
        z = 1.0 / (1.0 + np.exp(-(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])))
        n = np.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        h = (1.0 - z) * n + z * h
        logits = h @ t["head.weight"].T + t["head.bias"]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True), h


# ---- torch ---------------------------------------------------------------------------------------------

class TorchPolicy:
    """torch.nn modules named as the export's tensors (load_state_dict(strict=True) takes them as they
    are), with the same step(x, h) as NumpyPolicy on numpy arrays (float32)."""

    def __init__(self, tensors, prefix="policy"):
        try:
            import torch
        except ImportError:
            raise RuntimeError("torch is not installed (pip install torch), or use --backend numpy") from None
        from torch import nn
        self.torch = torch
        self.dims, t = network_tensors(tensors, prefix)
        d = self.dims
        net = nn.Module()
        if "channels" in d:
            net.encoder = nn.Module()
            net.encoder.conv1 = nn.Conv2d(d["channels"], d["filters"], d["kernel"], stride=CONV_STRIDE)
            net.encoder.conv2 = nn.Conv2d(d["filters"], d["filters"], d["kernel"], stride=CONV_STRIDE)
            net.encoder.image_fc = nn.Linear(d["flat"], d["units"])
            net.encoder.extra_fc = nn.Linear(d["extra_in"], d["extra_units"])
        net.gru = nn.GRU(d["gru_inputs"], d["hidden"])
        net.head = nn.Linear(d["hidden"], d["actions"])
        net.load_state_dict({name: torch.from_numpy(a) for name, a in t.items()}, strict=True)
        self.net = net.eval()

    def initial_state(self, batch):
        return np.zeros((batch, self.dims["hidden"]), dtype=np.float32)

    def step(self, x, h):
        torch, net, d = self.torch, self.net, self.dims
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
            u = x
            if "channels" in d:
                c, (height, width) = d["channels"], d["image_hw"]
                image = x[:, :c * height * width].reshape(-1, c, height, width)
                f = torch.relu(net.encoder.conv2(torch.relu(net.encoder.conv1(image)))).flatten(1)
                u = torch.cat([torch.relu(net.encoder.image_fc(f)),
                               torch.relu(net.encoder.extra_fc(x[:, c * height * width:]))], dim=1)
            y, h_next = net.gru(u.unsqueeze(0), torch.as_tensor(np.asarray(h, dtype=np.float32)).unsqueeze(0))
            probs = torch.softmax(net.head(y[0]), dim=1)
        return probs.numpy().astype(np.float64), h_next[0].numpy()


def make_policy(tensors, backend):
    return TorchPolicy(tensors) if backend == "torch" else NumpyPolicy(tensors)


# ---- one trial -----------------------------------------------------------------------------------------

def step_input(obs, actions, prev_action, prev_reward, prev_done):
    """The policy input [obs, onehot(prev action), prev reward, prev done]; prev_action < 0: none."""
    onehot = np.zeros(actions)
    if prev_action >= 0:
        onehot[prev_action] = 1.0
    return np.concatenate([obs, onehot, [prev_reward, prev_done]])


def play_trial(policy, config, seed):
    """Plays one trial of the export's task (a bandit or a tabular MDP, drawn with numpy from `seed`),
    sampling actions from the policy. Returns [(episode, step, action, reward)], one per step."""
    rng = np.random.default_rng(seed)
    env, episodes = config["env"], config["episodes"]
    if env == "bandit":
        arms, states, horizon = config["arms"], 0, 1
        p = rng.uniform(size=arms)
    elif env == "mdp":
        arms, states, horizon = config["actions"], config["states"], config["horizon"]
        mu = rng.normal(1.0, 1.0, size=(states, arms))
        trans = rng.dirichlet(np.ones(states), size=(states, arms))  # [S, A, S]
    else:
        raise RuntimeError(f"playing a {env} trial needs rl2-cuda's simulator; replay recorded inputs with "
                           f"--case, or watch one with rl2-cuda eval --video")
    if policy.dims["inputs"] != states + arms + 2:
        raise FormatError(f"the policy takes {policy.dims['inputs']} inputs, a {env} step gives {states + arms + 2}")
    h = policy.initial_state(1)
    action, reward, done, log = -1, 0.0, 0.0, []
    for episode in range(episodes):
        s = 0
        for t in range(horizon):
            obs = np.eye(states)[s] if states else np.zeros(0)
            probs, h = policy.step(step_input(obs, arms, action, reward, done)[None, :], h)
            pr = np.asarray(probs[0], dtype=np.float64)
            action = int(rng.choice(arms, p=pr / pr.sum()))
            if env == "bandit":
                reward = float(rng.uniform() < p[action])
            else:
                reward = float(rng.normal(mu[s, action], 1.0))
                s = int(rng.choice(states, p=trans[s, action]))
            done = 1.0 if t == horizon - 1 else 0.0
            log.append((episode, t, action, reward))
    return log


def replay_case(policy, x):
    """Action probabilities [T, B, A] of the policy over recorded inputs x [T, B, inputs], h = 0 at t = 0."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != policy.dims["inputs"]:
        raise FormatError(f"x has shape {list(x.shape)}, expected [T, B, {policy.dims['inputs']}]")
    h = policy.initial_state(x.shape[1])
    out = np.empty((x.shape[0], x.shape[1], policy.dims["actions"]))
    for t in range(x.shape[0]):
        out[t], h = policy.step(x[t], h)
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="policy.safetensors (rl2-cuda export, or a run's checkpoint.safetensors)")
    ap.add_argument("--backend", choices=["torch", "numpy"], default="torch")
    ap.add_argument("--seed", type=int, default=0, help="the trial's task and action draws (numpy)")
    ap.add_argument("--case", help="replay recorded inputs {x, probs} instead of playing a trial")
    ap.add_argument("--tolerance", type=float, default=1e-5, help="--case: largest |p - probs| accepted")
    args = ap.parse_args(argv[1:])
    try:
        tensors, metadata, config = read_policy(args.model)
        policy = make_policy(tensors, args.backend)
        what = f"{args.model}: {config['env']} policy, {'encoder + ' if has_encoder(tensors) else ''}" \
               f"GRU {policy.dims['hidden']}, {policy.dims['actions']} actions, {args.backend}"
        if args.case:
            with open(args.case) as f:
                case = json.load(f)
            ours = replay_case(policy, case["x"])
            ref = np.asarray(case["probs"], dtype=np.float64)
            if ref.shape != ours.shape:
                raise FormatError(f"{args.case}: probs has shape {list(ref.shape)}, the policy gives {list(ours.shape)}")
            err = float(np.max(np.abs(ours - ref))) if ours.size else 0.0
            ok = err <= args.tolerance  # also False for NaN
            print(f"{what}: {ours.shape[0]} steps x {ours.shape[1]} trials, max |p - probs| = {err:.3e} "
                  f"({'OK' if ok else 'FAIL'}, tolerance {args.tolerance:g})")
            return 0 if ok else 1
        log = play_trial(policy, config, args.seed)
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        print(f"load_policy: error: {e}", file=sys.stderr)
        return 2
    print(what)
    if config["env"] == "bandit":  # one pull per episode
        print(f"arms pulled: {[a for *_, a, _ in log]}")
    else:
        for episode in range(config["episodes"]):
            steps = [(a, r) for e, _, a, r in log if e == episode]
            print(f"episode {episode + 1}: actions {[a for a, _ in steps]}, reward {sum(r for _, r in steps):.3f}")
    print(f"trial total reward: {sum(r for *_, r in log):.3f} over {config['episodes']} episodes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
