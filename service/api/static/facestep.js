// The server's face step in the browser: RetinaFace with the same priors, thresholds and NMS
// (inference/detector.py), 5-point alignment to the emotion model's own 48x48 template with the same
// supersampled warp (inference/alignment.py), and our emotion graph, all in onnxruntime-web; head pose
// from the five landmarks (inference/head_pose.py); and a viewer's per-second trace, reduced as a
// study session's recording is (studies/trace.py). The numbers are the server's numbers; no image
// leaves the page.

const ORT = "/runtime/onnxruntime-web/1.31.1/ort.wasm.min.mjs";

// Fetch a graph, check its sha256 against what the service says it is, and open it.
async function openGraph(ort, url, headers) {
  const described = await (await fetch(url, { headers })).json();
  const bytes = new Uint8Array(await (await fetch(described.graph, { headers })).arrayBuffer());
  const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  if (digest !== described.sha256) throw new Error(`${described.name} does not match its sha256`);
  return { described, session: await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] }) };
}

// Anchor centres and sizes (cx, cy, size) in the network's output order: per stride, rows, columns, sizes.
function priorBoxes(height, width, strides, anchorSizes) {
  const priors = [];
  strides.forEach((stride, level) => {
    const rows = Math.ceil(height / stride), cols = Math.ceil(width / stride);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      for (const size of anchorSizes[level]) priors.push([(c + 0.5) * stride, (r + 0.5) * stride, size]);
    }
  });
  return priors;
}

function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

// Greedy NMS as OpenCV's NMSBoxes does it: highest score first, drop boxes overlapping a kept one.
function nms(found, threshold) {
  const kept = [];
  for (const face of [...found].sort((a, b) => b.score - a.score)) {
    if (kept.every((k) => iou(k.box, face.box) <= threshold)) kept.push(face);
  }
  return kept;
}

// Least-squares similarity (rotation, uniform scale, shift) from 5 points onto 5 (Umeyama, 1991), 2x3.
function similarity(source, target) {
  const mean = (pts) => pts.reduce((m, p) => [m[0] + p[0] / pts.length, m[1] + p[1] / pts.length], [0, 0]);
  const [sx, sy] = mean(source), [tx, ty] = mean(target);
  let a = 0, b = 0, variance = 0;
  source.forEach((p, i) => {
    const [x, y] = [p[0] - sx, p[1] - sy], [u, v] = [target[i][0] - tx, target[i][1] - ty];
    a += x * u + y * v;
    b += x * v - y * u;
    variance += x * x + y * y;
  });
  const scale = Math.hypot(a, b) / variance, angle = Math.atan2(b, a);
  const cos = scale * Math.cos(angle), sin = scale * Math.sin(angle);
  return [[cos, -sin, tx - cos * sx + sin * sy], [sin, cos, ty - sin * sx - cos * sy]];
}

function bilinear(gray, width, height, x, y) {
  const cx = Math.min(Math.max(x, 0), width - 1), cy = Math.min(Math.max(y, 0), height - 1);
  const x0 = Math.floor(cx), y0 = Math.floor(cy);
  const x1 = Math.min(x0 + 1, width - 1), y1 = Math.min(y0 + 1, height - 1);
  const fx = cx - x0, fy = cy - y0;
  const top = gray[y0 * width + x0] * (1 - fx) + gray[y0 * width + x1] * fx;
  const bottom = gray[y1 * width + x0] * (1 - fx) + gray[y1 * width + x1] * fx;
  return top * (1 - fy) + bottom * fy;
}

// One face warped to size x size: rendered at up to 8x the size, then averaged down, as the server does.
function alignFace(gray, width, height, landmarks, template, size) {
  const m = similarity(landmarks, template);
  const scale = Math.hypot(m[0][0], m[1][0]);
  const factor = scale > 0 ? Math.min(8, Math.max(1, Math.ceil(1 / scale))) : 1;
  const det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
  const crop = new Float32Array(size * size);
  for (let v = 0; v < size * factor; v++) {
    for (let u = 0; u < size * factor; u++) {
      const x = u / factor - m[0][2], y = v / factor - m[1][2];  // inverse of the similarity
      const srcX = (m[1][1] * x - m[0][1] * y) / det, srcY = (-m[1][0] * x + m[0][0] * y) / det;
      crop[Math.floor(v / factor) * size + Math.floor(u / factor)] += Math.round(bilinear(gray, width, height, srcX, srcY));
    }
  }
  const cells = factor * factor;
  return crop.map((value) => Math.round(value / cells));
}

export class FaceStep {
  // detectorUrl, emotionUrl: where the service describes the two graphs (GET /v1/models/{name}/browser).
  static async open(detectorUrl, emotionUrl, headers = {}) {
    const ort = await import(ORT);
    ort.env.wasm.wasmPaths = ORT.slice(0, ORT.lastIndexOf("/") + 1);
    ort.env.wasm.numThreads = crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    const [detector, emotion] = await Promise.all([openGraph(ort, detectorUrl, headers), openGraph(ort, emotionUrl, headers)]);
    return new FaceStep(ort, detector, emotion);
  }

  constructor(ort, detector, emotion) {
    const d = detector.described.detector;
    const settings = { maxSide: d.max_side, scoreThreshold: d.score_threshold, nmsThreshold: d.nms_threshold, minFaceSize: d.min_face_size };
    Object.assign(this, { ort, detector, emotion, settings, classes: emotion.described.metadata.classes });
    this.canvas = new OffscreenCanvas(1, 1);
  }

  // ImageData of the frame at the detector's working size, padded to its size multiple with the mean colour.
  detectorInput(source, width, height) {
    const { preprocessing } = this.detector.described.metadata;
    const scale = Math.min(1, this.settings.maxSide / Math.max(width, height));
    const w = Math.max(1, Math.round(width * scale)), h = Math.max(1, Math.round(height * scale));
    const multiple = preprocessing.size_multiple;
    const pw = Math.ceil(w / multiple) * multiple, ph = Math.ceil(h / multiple) * multiple;
    this.canvas.width = pw; this.canvas.height = ph;
    const context = this.canvas.getContext("2d", { willReadFrequently: true });
    const [b, g, r] = preprocessing.mean_bgr;
    context.fillStyle = `rgb(${r},${g},${b})`;
    context.fillRect(0, 0, pw, ph);
    context.imageSmoothingQuality = "high";
    context.drawImage(source, 0, 0, w, h);
    const pixels = context.getImageData(0, 0, pw, ph).data;
    const blob = new Float32Array(3 * pw * ph);
    for (let i = 0; i < pw * ph; i++) {
      blob[i] = pixels[4 * i + 2] - b;
      blob[pw * ph + i] = pixels[4 * i + 1] - g;
      blob[2 * pw * ph + i] = pixels[4 * i] - r;
    }
    return { blob, pw, ph, scale };
  }

  async detect(source, width, height) {
    const meta = this.detector.described.metadata;
    const { blob, pw, ph, scale } = this.detectorInput(source, width, height);
    const input = new this.ort.Tensor("float32", blob, [1, 3, ph, pw]);
    const out = await this.detector.session.run({ [this.detector.session.inputNames[0]]: input });
    const [centreVar, sizeVar] = meta.priors.variances;
    const priors = priorBoxes(ph, pw, meta.priors.strides, meta.priors.anchor_sizes);
    const conf = out.conf.data, loc = out.loc.data, marks = out.landmarks.data;
    const found = [];
    priors.forEach(([cx, cy, size], i) => {
      const score = conf[2 * i + 1];
      if (score < this.settings.scoreThreshold) return;
      const x = cx + loc[4 * i] * centreVar * size, y = cy + loc[4 * i + 1] * centreVar * size;
      const w = size * Math.exp(loc[4 * i + 2] * sizeVar), h = size * Math.exp(loc[4 * i + 3] * sizeVar);
      const box = [(x - w / 2) / scale, (y - h / 2) / scale, (x + w / 2) / scale, (y + h / 2) / scale];
      box[0] = Math.min(Math.max(box[0], 0), width); box[2] = Math.min(Math.max(box[2], 0), width);
      box[1] = Math.min(Math.max(box[1], 0), height); box[3] = Math.min(Math.max(box[3], 0), height);
      const landmarks = [0, 1, 2, 3, 4].map((k) => [
        (cx + marks[10 * i + 2 * k] * centreVar * size) / scale,
        (cy + marks[10 * i + 2 * k + 1] * centreVar * size) / scale,
      ]);
      found.push({ box, landmarks, score });
    });
    return nms(found, this.settings.nmsThreshold)
      .filter((f) => Math.min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= this.settings.minFaceSize);
  }

  // The frame in grey, as OpenCV's BGR-to-grey conversion gives it.
  gray(source, width, height) {
    this.canvas.width = width; this.canvas.height = height;
    const context = this.canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(source, 0, 0, width, height);
    const pixels = context.getImageData(0, 0, width, height).data;
    const gray = new Float32Array(width * height);
    for (let i = 0; i < width * height; i++) {
      gray[i] = Math.round(0.299 * pixels[4 * i] + 0.587 * pixels[4 * i + 1] + 0.114 * pixels[4 * i + 2]);
    }
    return gray;
  }

  // Every face of a frame: box, landmarks, detection score, its aligned crop and its probabilities.
  async analyse(source, width, height) {
    const faces = await this.detect(source, width, height);
    if (!faces.length) return faces;
    const meta = this.emotion.described.metadata;
    const template = meta.preprocessing.alignment_template;
    const gray = this.gray(source, width, height);
    const size = template.size;
    const batch = new Float32Array(faces.length * size * size);
    faces.forEach((face, n) => {
      face.crop = alignFace(gray, width, height, face.landmarks, template.landmarks, size);
      batch.set(face.crop.map((v) => v * meta.preprocessing.scale), n * size * size);
    });
    const input = new this.ort.Tensor("float32", batch, [faces.length, 1, size, size]);
    const out = await this.emotion.session.run({ [this.emotion.session.inputNames[0]]: input });
    const probabilities = out[this.emotion.session.outputNames[0]].data;
    const classes = meta.classes.length;
    faces.forEach((face, n) => (face.probabilities = Array.from(probabilities.slice(n * classes, (n + 1) * classes))));
    return faces;
  }
}

// --- head pose -----------------------------------------------------------------------------------
// The average face of inference/head_pose.py, in the detector's landmark order (mm, y down, z away).
const FACE_MODEL = [[-32, -37.5, 26], [32, -37.5, 26], [0, 0, 0], [-24.5, 29, 24], [24.5, 29, 24]];
const FOCAL_IN_FACE_WIDTHS = 20;

// Solve the square system a x = b (Gaussian elimination with partial pivoting).
function solve(a, b) {
  const n = b.length, m = a.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    const p = m.reduce((best, row, r) => (r >= c && Math.abs(row[c]) > Math.abs(m[best][c]) ? r : best), c);
    [m[c], m[p]] = [m[p], m[c]];
    for (let r = c + 1; r < n; r++) {
      const f = m[r][c] / m[c][c];
      for (let k = c; k <= n; k++) m[r][k] -= f * m[c][k];
    }
  }
  const x = new Array(n).fill(0);
  for (let r = n - 1; r >= 0; r--) x[r] = (m[r][n] - m[r].slice(r + 1, n).reduce((s, v, k) => s + v * x[r + 1 + k], 0)) / m[r][r];
  return x;
}

const dot = (a, b) => a.reduce((s, v, i) => s + v * b[i], 0);
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const normalise = (v) => v.map((x) => x / Math.hypot(...v));
const times = (r, s) => r.map((row) => [0, 1, 2].map((j) => row[0] * s[0][j] + row[1] * s[1][j] + row[2] * s[2][j]));

function rodrigues([x, y, z]) {
  const angle = Math.hypot(x, y, z);
  if (angle < 1e-12) return [[1, -z, y], [z, 1, -x], [-y, x, 1]];
  const [u, v, w] = [x / angle, y / angle, z / angle], c = Math.cos(angle), s = Math.sin(angle), t = 1 - c;
  return [
    [c + u * u * t, u * v * t - w * s, u * w * t + v * s],
    [v * u * t + w * s, c + v * v * t, v * w * t - u * s],
    [w * u * t - v * s, w * v * t + u * s, c + w * w * t],
  ];
}

// The face's rotation as the server finds it: the rigid pose minimising the reprojection error of the
// average face through the server's camera (focal length 20 face widths, centred on the points),
// refined by Levenberg-Marquardt from both readings of a scaled-orthographic fit (which cannot tell a
// face tilted up from one tilted down), keeping the better.
function facePose(points) {
  const xs = points.map((p) => p[0]);
  const focal = FOCAL_IN_FACE_WIDTHS * (Math.max(...xs) - Math.min(...xs));
  const centre = [0, 1].map((k) => points.reduce((s, p) => s + p[k], 0) / points.length);
  const model = FACE_MODEL, modelCentre = [0, 1, 2].map((k) => model.reduce((s, p) => s + p[k], 0) / model.length);
  const residuals = (rotation, t) => model.flatMap((p) => {
    const q = [0, 1, 2].map((i) => dot(rotation[i], p) + t[i]);
    return [(focal * q[0]) / q[2] + centre[0], (focal * q[1]) / q[2] + centre[1]];
  }).map((v, i) => v - points[i >> 1][i & 1]);
  // Scaled orthographic start: image offsets ≈ s (R (X - c))_xy, solved for the 2x3 s R by least squares.
  const centred = model.map((p) => p.map((x, k) => x - modelCentre[k]));
  const gram = [0, 1, 2].map((i) => [0, 1, 2].map((j) => centred.reduce((s, p) => s + p[i] * p[j], 0)));
  const rows = [0, 1].map((k) => solve(gram, [0, 1, 2].map((i) => centred.reduce((s, p, n) => s + p[i] * (points[n][k] - centre[k]), 0))));
  const scale = (Math.hypot(...rows[0]) + Math.hypot(...rows[1])) / 2;
  const [a, b] = rows.map(normalise);
  const sum = normalise(a.map((x, i) => x + b[i])), diff = normalise(a.map((x, i) => x - b[i]));
  const r1 = sum.map((x, i) => (x + diff[i]) / Math.SQRT2), r2 = sum.map((x, i) => (x - diff[i]) / Math.SQRT2);
  const flipped = [[r1[0], r1[1], -r1[2]], [r2[0], r2[1], -r2[2]]];
  let best = null;
  for (const [u, v] of [[r1, r2], flipped]) {
    const start = [u, v, cross(u, v)];
    const depth = focal / scale;
    // Parameters: a rotation vector applied after the start, and the translation.
    const shift = start.map((row) => -dot(row, modelCentre));
    let params = [0, 0, 0, shift[0], shift[1], shift[2] + depth];
    const pose = (q) => [times(start, rodrigues(q.slice(0, 3))), q.slice(3)];
    const error = (q) => residuals(...pose(q));
    let damping = 1e-3;
    for (let iteration = 0; iteration < 50; iteration++) {
      const r = error(params);
      const jacobian = params.map((_, j) => {
        const step = j < 3 ? 1e-6 : 1e-4 * depth;
        const moved = [...params];
        moved[j] += step;
        return error(moved).map((v, i) => (v - r[i]) / step);
      });
      const jtj = jacobian.map((cj) => jacobian.map((ck) => dot(cj, ck)));
      const jtr = jacobian.map((cj) => -dot(cj, r));
      const damped = jtj.map((row, i) => row.map((v, k) => (i === k ? v * (1 + damping) : v)));
      const candidate = solve(damped, jtr).map((d, j) => params[j] + d);
      const [before, after] = [dot(r, r), dot(error(candidate), error(candidate))];
      if (after < before) (params = candidate), (damping /= 10);
      else damping *= 10;
      if (damping > 1e8 || (after < before && before - after < 1e-9 * before)) break;
    }
    const found = error(params);
    if (!best || dot(found, found) < best.cost) best = { cost: dot(found, found), rotation: pose(params)[0] };
  }
  return best.rotation;
}

// (yaw, pitch, roll) in degrees with the server's signs (inference/head_pose.py); null for degenerate points.
export function headPose(landmarks) {
  const xs = landmarks.map((p) => p[0]);
  if (!landmarks.flat().every(Number.isFinite) || Math.max(...xs) - Math.min(...xs) < 1) return null;
  const rotation = facePose(landmarks);
  const degrees = (x) => (x * 180) / Math.PI;
  const yaw = degrees(Math.asin(Math.max(-1, Math.min(1, -rotation[2][0]))));
  const pitch = degrees(Math.atan2(rotation[2][1], rotation[2][2]));
  const roll = degrees(Math.atan2(rotation[1][0], rotation[0][0]));
  return [-yaw, -pitch, roll];
}

// --- the viewer's trace ------------------------------------------------------------------------------
const MIN_IOU = 0.2; // tracking/tracker.py
const MAX_GAP_MS = 1000; // a track ends after its face has been missing this long
const MIN_TRACK_FRAMES = 3; // shorter tracks are stray detections

function median(values) {
  const sorted = [...values].sort((x, y) => x - y), mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// Every analysed frame of a session and the faces tracked through them, reduced to one summary per
// second of the ad as studies/trace.py reduces a recording: the main face (most frames near the centre,
// then any track that never overlaps it in time), and per second the frames analysed, the frames with
// that face, the median of each class renormalised to sum to 1, and the median |yaw| and |pitch|.
export class ViewerTrace {
  constructor(width, height) {
    Object.assign(this, { width, height, analysedMs: [], tracks: [], nextId: 1 });
  }

  add(timeMs, faces) {
    this.analysedMs.push(timeMs);
    const live = this.tracks.filter((t) => timeMs - t.lastMs <= MAX_GAP_MS);
    const pairs = [];
    faces.forEach((face, f) => live.forEach((track, k) => pairs.push([iou(face.box, track.box), f, k])));
    const usedFaces = new Set(), usedTracks = new Set();
    for (const [overlap, f, k] of pairs.sort((x, y) => y[0] - x[0])) {
      if (overlap < MIN_IOU || usedFaces.has(f) || usedTracks.has(k)) continue;
      usedFaces.add(f); usedTracks.add(k);
      this.extend(live[k], timeMs, faces[f]);
    }
    faces.forEach((face, f) => {
      if (usedFaces.has(f)) return;
      const track = { id: this.nextId++, frames: [] };
      this.tracks.push(track);
      this.extend(track, timeMs, face);
    });
  }

  extend(track, timeMs, face) {
    const pose = headPose(face.landmarks);
    Object.assign(track, { box: face.box, lastMs: timeMs });
    track.frames.push({ timeMs, box: face.box, probabilities: face.probabilities, pose });
  }

  mainFrames() {
    const centrality = (track) => {
      const centre = [0, 1].map((k) => track.frames.reduce((s, f) => s + (f.box[k] + f.box[k + 2]) / 2, 0) / track.frames.length);
      const offset = [Math.abs(centre[0] / this.width - 0.5) * 2, Math.abs(centre[1] / this.height - 0.5) * 2];
      return 1 - (0.5 * Math.hypot(...offset)) / Math.SQRT2;
    };
    const span = (t) => [t.frames[0].timeMs, t.frames[t.frames.length - 1].timeMs];
    const chosen = [];
    const kept = this.tracks.filter((t) => t.frames.length >= MIN_TRACK_FRAMES);
    for (const track of kept.sort((a, b) => b.frames.length * centrality(b) - a.frames.length * centrality(a))) {
      const [first, last] = span(track);
      if (chosen.every((c) => last < span(c)[0] || first > span(c)[1])) chosen.push(track);
    }
    return chosen.flatMap((t) => t.frames);
  }

  // One summary per second of the ad (seconds of it, starting offsetS into the page's clock).
  seconds(offsetS, count) {
    const second = (timeMs) => Math.floor(timeMs / 1000 - offsetS);
    const analysed = new Array(count).fill(0);
    for (const t of this.analysedMs) if (second(t) >= 0 && second(t) < count) analysed[second(t)]++;
    const groups = Array.from({ length: count }, () => []);
    for (const frame of this.mainFrames()) if (second(frame.timeMs) >= 0 && second(frame.timeMs) < count) groups[second(frame.timeMs)].push(frame);
    return groups.map((frames, t) => {
      if (!frames.length) return { analysed: analysed[t], faces: 0, probabilities: null, yaw_deg: null, pitch_deg: null };
      const medians = frames[0].probabilities.map((_, k) => median(frames.map((f) => f.probabilities[k])));
      const total = medians.reduce((s, v) => s + v, 0);
      const poses = frames.map((f) => f.pose).filter(Boolean);
      return {
        analysed: analysed[t],
        faces: frames.length,
        probabilities: medians.map((v) => v / total),
        yaw_deg: poses.length ? median(poses.map((p) => Math.abs(p[0]))) : null,
        pitch_deg: poses.length ? median(poses.map((p) => Math.abs(p[1]))) : null,
      };
    });
  }
}
