"""Procedural training videos for the testbed model: coloured shapes that move over simple backgrounds, each clip
with a prompt from a small grammar (docs/testbed.md lists it). Rendering is vectorised over a batch with torch,
so a GPU makes thousands of clips a second; the same seed gives the same clips on any device up to float rounding.

Clip = [frames, 3, size, size] in [-1, 1] (the engine's pixel-space latents).

Grammar:
    prompt  := object [" and " object] [" over a " background " background"] [" as the camera pans " dir]
    object  := "a " colour " " shape " " motion
    motion  := "moves " dir [" fast" | " slowly"] | "moves " dir " and stops" | "moves " dir " and speeds up"
             | "falls" | "rises" | "bounces" | "stays still"
    dir     := "left" | "right" | "up" | "down"
    background := "gradient" | "textured"
Screen directions: "moves right" means the object's centroid moves to larger x in the frame. A camera pan moves the
background only (the camera follows the objects), so prompts about objects keep their on-screen meaning.
"""

import math

import torch

COLOURS = {
    "red": (0.95, 0.12, 0.10),
    "green": (0.10, 0.85, 0.20),
    "blue": (0.12, 0.30, 0.98),
    "yellow": (0.98, 0.90, 0.10),
    "white": (0.97, 0.97, 0.97),
    "orange": (0.98, 0.55, 0.05),
    "purple": (0.65, 0.15, 0.90),
}
SHAPES = ["circle", "square", "triangle", "diamond"]
DIRECTIONS = ["left", "right", "up", "down"]
# Motion kinds; "moves" kinds carry a direction.
MOTIONS = ["moves", "moves fast", "moves slowly", "moves and stops", "moves and speeds up", "falls", "rises",
           "bounces", "stays still"]
MOTION_WEIGHTS = [4, 2, 2, 2, 2, 2, 2, 2, 1]
BACKGROUNDS = ["gradient", "textured"]

VOCABULARY = sorted(set(
    ["a", "and", "over", "background", "as", "the", "camera", "pans", "moves", "fast", "slowly", "stops", "speeds",
     "up", "falls", "rises", "bounces", "stays", "still"]
    + list(COLOURS) + SHAPES + DIRECTIONS + BACKGROUNDS))

# Background tones: dark and low in saturation so that every named colour stands out from them.
BACKGROUND_TONES = torch.tensor([
    (0.10, 0.10, 0.12), (0.22, 0.22, 0.24), (0.16, 0.19, 0.24), (0.24, 0.20, 0.16), (0.14, 0.20, 0.16),
    (0.30, 0.28, 0.30), (0.06, 0.07, 0.10), (0.20, 0.16, 0.22),
])

_DIR_VECTORS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


def _motion_phrase(kind, direction):
    if kind == "moves":
        return f"moves {direction}"
    if kind == "moves fast":
        return f"moves {direction} fast"
    if kind == "moves slowly":
        return f"moves {direction} slowly"
    if kind == "moves and stops":
        return f"moves {direction} and stops"
    if kind == "moves and speeds up":
        return f"moves {direction} and speeds up"
    return kind


def _triangle_wave(p, low, high):
    """Reflects an unbounded coordinate into [low, high] (a bounce off two walls)."""
    span = high - low
    q = torch.remainder(p - low, 2 * span)
    return low + torch.where(q > span, 2 * span - q, q)


class ClipSpec:
    """Everything random about one clip, drawn from a python RNG (cheap; the pixels are made in a batch)."""

    def __init__(self, rng, frames, size):
        self.objects = []
        count = 1 if rng.random() < 0.55 else 2
        colours = rng.sample(list(COLOURS), count)
        for colour in colours:
            kind = rng.choices(MOTIONS, MOTION_WEIGHTS)[0]
            direction = rng.choice(DIRECTIONS)
            radius = rng.uniform(5.0, 8.5)
            self.objects.append(self._object(rng, colour, rng.choice(SHAPES), kind, direction, radius, frames, size))
        self.background = rng.choice(BACKGROUNDS)
        self.say_background = rng.random() < 0.5
        self.tones = rng.sample(range(len(BACKGROUND_TONES)), 2)
        self.gradient_angle = rng.uniform(0, 2 * math.pi)
        self.texture_angle = rng.uniform(0, math.pi)
        self.texture_period = rng.uniform(6.0, 14.0)
        self.pan = rng.choice(DIRECTIONS) if rng.random() < 0.3 else None
        self.pan_speed = rng.uniform(0.8, 1.6)
        words = [f"a {o['colour']} {o['shape']} {_motion_phrase(o['kind'], o['direction'])}" for o in self.objects]
        prompt = " and ".join(words)
        if self.say_background:
            prompt += f" over a {self.background} background"
        if self.pan is not None:
            prompt += f" as the camera pans {self.pan}"
        self.prompt = prompt

    @staticmethod
    def _object(rng, colour, shape, kind, direction, radius, frames, size):
        """Centre track [frames, 2] in pixels, chosen so that the object stays inside the frame."""
        t = torch.arange(frames, dtype=torch.float64)
        last = frames - 1
        lo, hi = radius + 1.0, size - radius - 1.0
        dx, dy = _DIR_VECTORS[direction]
        if kind.startswith("moves"):
            speed = {"moves": 1.5, "moves fast": 2.3, "moves slowly": 0.8}.get(kind, 1.6)
            if kind == "moves and stops":
                stop = rng.randint(last // 3, 2 * last // 3)
                travel = torch.clamp(t, max=stop) * speed
            elif kind == "moves and speeds up":
                travel = 0.4 * t + 0.09 * t * t
            else:
                travel = t * speed
            distance = float(travel[-1])
            along_lo, along_hi = lo, max(lo, hi - distance)
            start_along = rng.uniform(along_lo, along_hi)
            across = rng.uniform(lo, hi)
            sign = dx + dy
            if sign > 0:
                along = start_along + travel
            else:
                along = (size - start_along) - travel
            along = along.clamp(lo, hi)
            if dx != 0:
                track = torch.stack([along, torch.full_like(t, across)], 1)
            else:
                track = torch.stack([torch.full_like(t, across), along], 1)
        elif kind == "falls":
            x = rng.uniform(lo, hi)
            y0 = rng.uniform(lo, lo + 8)
            y = torch.clamp(y0 + 0.5 * 0.2 * t * t, max=hi)  # accelerates, then rests on the floor
            track = torch.stack([torch.full_like(t, x), y], 1)
        elif kind == "rises":
            x = rng.uniform(lo, hi)
            speed = rng.uniform(1.2, 1.8)
            y0 = rng.uniform(max(lo, lo + speed * last), hi) if lo + speed * last < hi else hi
            y = torch.clamp(y0 - speed * t, min=lo)
            track = torch.stack([torch.full_like(t, x), y], 1)
        elif kind == "bounces":
            vx = rng.choice([-1, 1]) * rng.uniform(1.6, 2.6)
            vy = rng.choice([-1, 1]) * rng.uniform(1.6, 2.6)
            x0, y0 = rng.uniform(lo, hi), rng.uniform(lo, hi)
            track = torch.stack([_triangle_wave(x0 + vx * t, lo, hi), _triangle_wave(y0 + vy * t, lo, hi)], 1)
        else:  # stays still
            track = torch.tensor([[rng.uniform(lo, hi), rng.uniform(lo, hi)]], dtype=torch.float64).repeat(frames, 1)
        return {"colour": colour, "shape": shape, "kind": kind, "direction": direction, "radius": radius,
                "track": track.float()}


def _shape_distance(shape, px, py, radius):
    """Signed distance (pixels, negative inside) of each pixel to a shape centred at the origin."""
    if shape == "circle":
        return torch.sqrt(px * px + py * py) - radius
    if shape == "square":
        return torch.maximum(px.abs(), py.abs()) - 0.85 * radius
    if shape == "diamond":
        return (px.abs() + py.abs()) * (1 / math.sqrt(2)) - 0.75 * radius
    # Upward triangle: the largest of three edge distances (exact inside, a fine bound outside).
    r = 1.1 * radius
    edges = []
    for angle in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
        nx, ny = math.cos(angle), -math.sin(angle)  # outward normals, screen y points down
        edges.append(-(px * nx + py * ny) - 0.5 * r)
    return torch.maximum(torch.maximum(edges[0], edges[1]), edges[2])


def render(specs, frames, size, device):
    """Pixels of a batch of clips: [batch, frames, 3, size, size] in [-1, 1]."""
    coords = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    t = torch.arange(frames, device=device, dtype=torch.float32).view(frames, 1, 1)
    clips = []
    tones = BACKGROUND_TONES.to(device)
    for spec in specs:
        # Background: a linear blend of two tones, plus stripes for "textured"; a pan slides the pattern.
        shift_x = torch.zeros_like(t)
        shift_y = torch.zeros_like(t)
        if spec.pan is not None:
            # Camera pans right -> the scene slides left on screen.
            dx, dy = _DIR_VECTORS[spec.pan]
            shift_x = -dx * spec.pan_speed * t
            shift_y = -dy * spec.pan_speed * t
        sx, sy = gx - shift_x, gy - shift_y  # [frames, size, size]
        ramp = (math.cos(spec.gradient_angle) * (sx - size / 2) + math.sin(spec.gradient_angle) * (sy - size / 2))
        ramp = torch.clamp(ramp / size + 0.5, 0, 1).unsqueeze(1)
        c0, c1 = tones[spec.tones[0]].view(1, 3, 1, 1), tones[spec.tones[1]].view(1, 3, 1, 1)
        image = c0 * (1 - ramp) + c1 * ramp
        if spec.background == "textured":
            phase = (math.cos(spec.texture_angle) * sx + math.sin(spec.texture_angle) * sy) * (2 * math.pi /
                                                                                             spec.texture_period)
            image = image + 0.07 * torch.sin(phase).unsqueeze(1) * torch.sign(torch.sin(0.37 * phase + 1.0)).unsqueeze(1)
        # Objects in order: the second one occludes the first where they overlap.
        for obj in spec.objects:
            track = obj["track"].to(device)
            px = gx.unsqueeze(0) - track[:, 0].view(frames, 1, 1)
            py = gy.unsqueeze(0) - track[:, 1].view(frames, 1, 1)
            coverage = torch.clamp(0.5 - _shape_distance(obj["shape"], px, py, obj["radius"]), 0, 1).unsqueeze(1)
            colour = torch.tensor(COLOURS[obj["colour"]], device=device).view(1, 3, 1, 1)
            image = image * (1 - coverage) + colour * coverage
        clips.append(image.clamp(0, 1) * 2 - 1)
    return torch.stack(clips)


def encode_prompt(prompt, text_len):
    """Word ids (0 = unknown) of a prompt, the engine's tokenizer: lower-cased alphanumeric runs."""
    ids = []
    word = ""
    for ch in prompt.lower() + " ":
        if ch.isalnum():
            word += ch
        elif word:
            ids.append(VOCABULARY.index(word) + 1 if word in VOCABULARY else 0)
            word = ""
    ids = ids[:text_len]
    return ids + [-1] * (text_len - len(ids))  # -1 marks padding (a zero row in the engine)


def batch(rng, count, frames, size, text_len, device):
    specs = [ClipSpec(rng, frames, size) for _ in range(count)]
    video = render(specs, frames, size, device)
    ids = torch.tensor([encode_prompt(s.prompt, text_len) for s in specs], device=device)
    return video, ids, specs
