# The integer MFCC front-end on the device: int16 PCM frame -> n_mfcc integer MFCCs (Q8 log2 units), exactly the
# integers of the host's microdx.features.fixed_mfcc.frames_int (its docstring gives each step and its bounds: every
# value stays below 2**30, so a 32-bit MCU computes it in small ints and allocates nothing per frame). The tables
# (window, twiddles, mel weights, DCT, log2 fractions) come from the host, so both sides share them exactly.
# Pure Python: the reference of udx/frontend_viper.py, which computes a whole frame in native code.
import array

from udx import backends

try:   # the native twin of Frontend._fft (udx/backends.py)
    from udx import frontend_viper
except (ImportError, SyntaxError, ValueError):
    frontend_viper = None
try:   # ulab's FFT, under the ulab backend (CircuitPython): floating point, within a stated tolerance, not exact
    from udx import frontend_ulab
except ImportError:
    frontend_ulab = None

_TOP = 1 << 14   # block floating point: max |v| in [_TOP / 2, _TOP)


class Frontend:
    """Frame features from the host's tables: a dict of int16 arrays (array("h"), as from_blob reads them from a blob;
    microdx.features.fixed_mfcc.tables makes them), used as they are, not copied. Work buffers are allocated once,
    here."""

    def __init__(self, t):
        self.win = t["window"]
        self.frame_len = len(self.win)
        self.cos = t["cos"]
        self.sin = t["sin"]
        self.n_fft = 2 * len(self.cos)
        self.spans = t["mel_spans"]
        self.mel_w = t["mel_w"]
        self.n_mels = len(self.spans) // 2
        self.dct = t["dct"]
        self.n_mfcc = len(self.dct) // self.n_mels
        self.log2 = t["log2"]
        self.pre = t["preemph"][0]
        n = self.n_fft
        bits = 0
        while (1 << bits) < n:
            bits += 1
        rev = array.array("H", bytes(2 * n))
        for i in range(n):
            r = 0
            v = i
            for _ in range(bits):
                r = (r << 1) | (v & 1)
                v >>= 1
            rev[i] = r
        self.rev = rev
        self.stages = bits
        # int16: every FFT value's modulus stays below 16384 (and viper reads 16-bit arrays sign-extended the same
        # way on 32- and 64-bit ports, which ptr32 loads are not)
        self.re = array.array("h", bytes(2 * n))
        self.im = array.array("h", bytes(2 * n))
        self.mel = array.array("i", bytes(4 * self.n_mels))
        self.buf = array.array("i", bytes(4 * self.frame_len))

    def frame(self, x, at, prev, out, out_at):
        """out[out_at:out_at + n_mfcc] = the MFCCs of the frame x[at:at + frame_len] (int16 samples); prev is the
        sample before the frame (0 at the start of a clip)."""
        fast = backends.twin(frontend_viper, ulab=frontend_ulab)
        if fast:   # the whole frame in native code, or through ulab
            fast.frame(self, x, at, prev, out, out_at)
            return
        n = self.n_fft
        fl = self.frame_len
        re = self.re
        im = self.im
        win = self.win
        pre = self.pre
        rev = self.rev
        top = 0
        p = prev
        for i in range(n):   # zero the padding; the frame goes in bit-reversed order below
            im[i] = 0
            re[i] = 0
        buf = self.buf
        for i in range(fl):
            s = x[at + i]
            e = s - ((pre * p + 16384) >> 15)
            p = s
            v = (e * win[i] + 8192) >> 14    # up to 17 bits: int32 until the block shift below
            buf[i] = v
            if v > top:
                top = v
            elif -v > top:
                top = -v
        shift = 0
        if top:
            while top >= _TOP:
                top >>= 1
                shift -= 1
            while top < _TOP >> 1:
                top <<= 1
                shift += 1
        if shift >= 0:   # the frame goes in bit-reversed order, below 2**14 now
            for i in range(fl):
                re[rev[i]] = buf[i] << shift
        else:
            for i in range(fl):
                re[rev[i]] = buf[i] >> -shift
        halved = self._fft(top)   # top: max |v| after the block shift
        # power, then the mel energies (P in 15-bit halves: each product below 2**30)
        spans = self.spans
        w = self.mel_w
        mel = self.mel
        k = 0
        for m in range(self.n_mels):
            start = spans[2 * m]
            acc = 0
            for j in range(start, start + spans[2 * m + 1]):
                r = re[j]
                q = im[j]
                pw = (r * r + q * q) >> 5
                c = w[k]
                acc += (pw >> 15) * c + (((pw & 0x7FFF) * c) >> 15)
                k += 1
            mel[m] = acc
        log2 = self.log2
        corr = (shift + self.stages - halved) << 9   # the block shift and the FFT stages not halved, undone
        for m in range(self.n_mels):
            e = mel[m] + 1
            bits = 0
            v = e
            while v:
                v >>= 1
                bits += 1
            t = bits - 1
            f = (e >> (t - 8) if t >= 8 else e << (8 - t)) & 0xFF
            v = (t << 8) + log2[f] - corr
            mel[m] = v if v > 0 else 0
        dct = self.dct
        nm = self.n_mels
        for j in range(self.n_mfcc):
            acc = 0
            base = j * nm
            for m in range(nm):
                acc += dct[base + m] * mel[m]
            out[out_at + j] = acc >> 14

    def _fft(self, top):
        """In-place radix-2 FFT of re/im (already bit-reversed; Q15 twiddles): a stage halves its outputs only when
        its input's largest |re| + |im| (`top` for the first) reaches 8192, as the host reference does. Returns the
        number of stages halved."""
        n = self.n_fft
        re = self.re
        im = self.im
        cos = self.cos
        sin = self.sin
        halved = 0
        size = 2
        while size <= n:
            half = size >> 1
            step = n // size
            h = 1 if top >= 8192 else 0
            halved += h
            top = 0
            for j in range(half):
                wr = cos[j * step]
                wi = -sin[j * step]
                a = j
                while a < n:
                    b = a + half
                    br = re[b]
                    bi = im[b]
                    tr = (br * wr - bi * wi) >> 15
                    ti = (br * wi + bi * wr) >> 15
                    ar = re[a]
                    ai = im[a]
                    u = (ar + tr) >> h
                    v = (ai + ti) >> h
                    re[a] = u
                    im[a] = v
                    m = (u if u >= 0 else -u) + (v if v >= 0 else -v)
                    if m > top:
                        top = m
                    u = (ar - tr) >> h
                    v = (ai - ti) >> h
                    re[b] = u
                    im[b] = v
                    m = (u if u >= 0 else -u) + (v if v >= 0 else -v)
                    if m > top:
                        top = m
                    a += size
            size <<= 1
        return halved

    def clip(self, pcm, frames, hop, out):
        """out[0:frames * n_mfcc] = the MFCCs of a whole clip (int16 array, already cut or zero-padded to
        frame_len + hop * (frames - 1) samples), frame after frame."""
        for f in range(frames):
            at = f * hop
            self.frame(pcm, at, pcm[at - 1] if at else 0, out, f * self.n_mfcc)


class Stream:
    """Audio in chunks of any size (what machine.I2S.readinto or an ADC loop delivers) -> frame features, as
    Frontend.clip computes them from the whole clip: push() takes int16 samples; every `hop` samples once a frame is
    full, its MFCCs join a window of the last `frames` frames (window() copies it out, oldest first: the model's
    input). Fixed buffers; push() allocates nothing."""

    def __init__(self, fe, hop, frames):
        self.fe = fe
        self.hop = hop
        self.frames = frames
        fl = fe.frame_len
        self.buf = array.array("h", bytes(2 * (fl + 1)))   # [the sample before the frame, the frame]
        self.fill = 0            # samples of the current frame received
        self.feats = array.array("i", bytes(4 * frames * fe.n_mfcc))
        self.row = 0             # the window's next row (a ring of `frames` rows)
        self.count = 0           # frames computed since the start

    def reset(self):
        """Forget the audio pushed so far (a new clip): the next sample starts a frame, with 0 before it."""
        self.fill = self.row = self.count = 0
        self.buf[0] = 0
        feats = self.feats
        for j in range(len(feats)):
            feats[j] = 0

    def push(self, x, n=-1):
        """Take samples x[0:n] (default all; an int16 array, or a memoryview of one). Returns the number of frames
        completed by this call."""
        if n < 0:
            n = len(x)
        buf = self.buf
        fe = self.fe
        fl = fe.frame_len
        hop = self.hop
        k = fe.n_mfcc
        done = 0
        i = 0
        while i < n:
            buf[1 + self.fill] = x[i]
            self.fill += 1
            i += 1
            if self.fill == fl:
                fe.frame(buf, 1, buf[0], self.feats, self.row * k)
                self.row = (self.row + 1) % self.frames
                self.count += 1
                done += 1
                buf[0] = buf[hop]          # the sample before the next frame
                for j in range(1, fl - hop + 1):
                    buf[j] = buf[j + hop]
                self.fill = fl - hop
        return done

    def window(self, out):
        """out[0:frames * n_mfcc] = the last `frames` frames' MFCCs, oldest first (rows not yet computed are 0)."""
        k = self.fe.n_mfcc
        feats = self.feats
        src = self.row * k
        size = self.frames * k
        for j in range(size):
            out[j] = feats[src]
            src += 1
            if src == size:
                src = 0


_SHAPES = ("window", "cos", "sin", "mel_spans", "mel_w", "dct", "log2", "preemph")


def from_blob(f, size, e):
    """The Frontend of an open blob's header entry `e` (udx.Model.frontend): its record's int16 tables, each checked
    against the entry's parameters before its array is allocated, and its payload CRC checked."""
    import binascii
    from udx.blob import int_field, read_exact, read_record
    from udx.errors import FormatError

    what = "frontend"
    frame = int_field(e, "frame", 16, 1024, what)
    n_fft = int_field(e, "n_fft", 16, 1024, what)
    mels = int_field(e, "n_mels", 1, 128, what)
    k = int_field(e, "n_mfcc", 1, 128, what)
    if n_fft & (n_fft - 1) or frame > n_fft:
        raise FormatError("%s: n_fft %d must be a power of two from the frame (%d)" % (what, n_fft, frame))
    int_field(e, "off", 0, size, what)
    int_field(e, "len", 8, size - e["off"], what)
    need = {"window": [frame], "cos": [n_fft // 2], "sin": [n_fft // 2], "mel_spans": [2 * mels], "dct": [k, mels],
            "log2": [256], "preemph": [1]}
    tensors = read_record(f, size, e, what)
    t = {}
    for name in _SHAPES:
        r = tensors.get(name)
        if r is None or r[2] != "i16" or (name in need and r[3] != need[name]) or (
                name == "mel_w" and (len(r[3]) != 1 or r[3][0] > mels * n_fft)):
            raise FormatError("%s: tensor %r missing or of the wrong shape" % (what, name))
        a = array.array("h", bytes(r[1]))
        f.seek(r[0])
        read_exact(f, a, what + " " + name, r[1])
        if binascii.crc32(a) & 0xFFFFFFFF != r[4]:
            raise FormatError("%s: tensor %r CRC32 mismatch: the file is corrupt" % (what, name))
        t[name] = a
    total = 0
    for m in range(mels):
        start = t["mel_spans"][2 * m]
        count = t["mel_spans"][2 * m + 1]
        if start < 0 or count < 0 or start + count > n_fft // 2 + 1:
            raise FormatError("%s: mel filter %d spans bins %d..%d of %d" % (what, m, start, start + count,
                                                                           n_fft // 2 + 1))
        total += count
    if total != len(t["mel_w"]):
        raise FormatError("%s: mel filters take %d weights, the record holds %d" % (what, total, len(t["mel_w"])))
    return Frontend(t)


def to_input(feats, x, n, mult, shift, zero, start=0):
    """x[0:n] = the model's int8 input from Q8 features: ((c mult + 2**(shift-1)) >> shift) + zero, clamped, as the
    host's microdx.features.fixed_mfcc.to_input; c runs through feats[start:n], then feats[0:start] (a Stream's
    ring of frames, oldest first, read in place)."""
    half = 1 << (shift - 1)
    src = start
    for i in range(n):
        v = ((feats[src] * mult + half) >> shift) + zero
        x[i] = -128 if v < -128 else (127 if v > 127 else v)
        src += 1
        if src == n:
            src = 0


def stream(model):
    """A Stream of `model`'s audio front-end (udx.Model of a blob whose header has one: its tables are read and
    checked now): push() int16 audio into it as it arrives, then predict(model, st). ValueError without one. Kept
    out of udx.Model so that models without audio pay nothing for it in heap."""
    from udx.blob import file_size, int_field, read_header

    size = file_size(model._f)
    e = read_header(model._f, size).get("frontend")   # read again here: udx.Model keeps nothing of it
    if not isinstance(e, dict) or model.dtype != "i8":
        raise ValueError("this blob has no audio front-end for an int8 model: give predict() its input")
    fe = from_blob(model._f, size, e)
    int_field(e, "in_mult", 1, 16383, "frontend")
    int_field(e, "in_shift", 1, 40, "frontend")
    int_field(e, "in_zero", -128, 127, "frontend")
    frames = int_field(e, "frames", 1, 1024, "frontend")
    if frames * fe.n_mfcc != model.n_in:
        from udx.errors import FormatError
        raise FormatError("frontend: %d frames x %d MFCCs is not the model's %d inputs" % (frames, fe.n_mfcc,
                                                                                         model.n_in))
    st = Stream(fe, int_field(e, "hop", 1, 1024, "frontend"), frames)
    st.x = array.array("b", bytes(model.n_in))   # the model's int8 input, mapped from the ring in place
    st.mapping = (e["in_mult"], e["in_shift"], e["in_zero"])
    return st


def predict(model, st):
    """model.predict() on the last frames pushed into `st` (from stream()): their features mapped to its int8 input
    as the host's microdx.features.fixed_mfcc.to_input does."""
    mult, shift, zero = st.mapping
    to_input(st.feats, st.x, model.n_in, mult, shift, zero, st.row * st.fe.n_mfcc)
    return model.predict(st.x)
