// The server's face step in the browser: RetinaFace with the same priors, thresholds and NMS
// (inference/detector.py), 5-point alignment to the emotion model's own 48x48 template with the same
// supersampled warp (inference/alignment.py), and our emotion graph, all in onnxruntime-web. The
// numbers are the server's numbers; no image leaves the page.

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
