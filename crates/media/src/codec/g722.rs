//! G.722 (ITU-T, 7 kHz audio coding within 64 kbit/s), mode 1: 64 kbit/s, 16 kHz mono PCM,
//! one byte per pair of samples.
//!
//! Structure, following the block diagrams of the recommendation:
//! - a 24-tap quadrature mirror filter (QMF) splits the 16 kHz signal into a lower and a higher
//!   sub-band at 8 kHz each (and merges them again in the decoder);
//! - the lower sub-band is coded with 6-bit ADPCM (the predictor loop uses the embedded 4-bit
//!   code), the higher sub-band with 2-bit ADPCM;
//! - each band has a logarithmic scale factor adaptation (LOGSCL/SCALEL, LOGSCH/SCALEH) and a
//!   pole-zero predictor with two poles and six zeros (block 4: RECONS, PARREC, UPPOL1/2, UPZERO,
//!   DELAYA, FILTEP, FILTEZ, PREDIC), all in 16-bit fixed point with the recommendation's limits.
//!
//! The recommendation's encoder takes 14-bit PCM and its decoder emits 14-bit PCM; here both sides
//! take 16-bit PCM: the QMF analysis divides by 2^14 instead of 2^12 (the same sub-band signals,
//! the two extra input bits only refine rounding) and the synthesis by 2^11 instead of 2^13
//! (output scaled back to 16 bits). This is the scaling other 16-bit implementations use, so the
//! bit stream interoperates.

use super::g711::Fade;
use super::{AudioDecoder, AudioEncoder, CodecError, CodecKind};

/// QMF coefficients h0..h11 (h23-i = hi), ×2^13.
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Lower band quantizer decision levels (QUANTL), normalized, ×2^12 / DETL.
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];
/// 6-bit codes of negative differences, by quantizer interval.
const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
/// 6-bit codes of positive differences, by quantizer interval.
const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// Lower band inverse quantizer output for the 6-bit code (INVQBL, mode 1), ×2^15 / DETL.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Lower band inverse quantizer output for the 4-bit code (INVQAL, predictor loop).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// 4-bit code → magnitude index of the log scale factor multiplier (LOGSCL).
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Lower band log scale factor multipliers (LOGSCL).
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Higher band inverse quantizer output for the 2-bit code (INVQAH), ×2^15 / DETH.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// 2-bit code → magnitude index (LOGSCH).
const RH2: [usize; 4] = [2, 1, 2, 1];
/// Higher band log scale factor multipliers (LOGSCH).
const WH: [i32; 3] = [0, -214, 798];
/// Anti-log table of SCALEL/SCALEH: 2048·2^(i/32), rounded.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

#[inline]
fn sat16(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}

/// Magnitude as the recommendation computes it: one's complement for negative values.
#[inline]
fn mag(x: i32) -> i32 {
    if x >= 0 {
        x
    } else {
        -(x + 1)
    }
}

/// SCALEL / SCALEH: log scale factor → linear step size. `shift` is 8 for the lower band and
/// 10 for the higher band.
fn scale(nb: i32, shift: i32) -> i32 {
    let wd1 = ((nb >> 6) & 31) as usize;
    let wd2 = shift - (nb >> 11);
    let wd3 = if wd2 < 0 {
        ILB[wd1] << -wd2
    } else {
        ILB[wd1] >> wd2
    };
    wd3 << 2
}

/// The state of one sub-band's ADPCM: scale factor and pole-zero predictor.
#[derive(Debug, Clone)]
struct Band {
    /// Predicted signal (SL / SH).
    s: i32,
    /// Zero-section output (SZL / SZH).
    sz: i32,
    /// Log scale factor (NBL / NBH).
    nb: i32,
    /// Step size (DETL / DETH).
    det: i32,
    /// Reconstructed signal, r[1], r[2] (RLT1/2 / RH1/2).
    r: [i32; 3],
    /// Partially reconstructed signal, p[1], p[2] (PLT1/2 / PH1/2).
    p: [i32; 3],
    /// Pole coefficients a[1], a[2] (AL1/2 / AH1/2).
    a: [i32; 3],
    /// Quantized differences d[1..=6] (DLT1..6 / DH1..6).
    d: [i32; 7],
    /// Zero coefficients b[1..=6] (BL1..6 / BH1..6).
    b: [i32; 7],
}

impl Band {
    fn new(det: i32) -> Self {
        Self {
            s: 0,
            sz: 0,
            nb: 0,
            det,
            r: [0; 3],
            p: [0; 3],
            a: [0; 3],
            d: [0; 7],
            b: [0; 7],
        }
    }

    /// Block 4: updates the predictor with the quantized difference `dq` and computes the next
    /// prediction.
    fn predictor(&mut self, dq: i32) {
        // RECONS
        let r0 = sat16(self.s + dq);
        // PARREC
        let p0 = sat16(self.sz + dq);

        // UPPOL2
        let sg0 = p0 >> 15;
        let sg1 = self.p[1] >> 15;
        let sg2 = self.p[2] >> 15;
        let wd1 = sat16(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32767);
        let mut wd3 = (wd2 >> 7) + if sg0 == sg2 { 128 } else { -128 };
        wd3 += (self.a[2] * 32512) >> 15;
        let ap2 = wd3.clamp(-12288, 12288);

        // UPPOL1
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let limit = sat16(15360 - ap2);
        let ap1 = sat16(wd1 + wd2).clamp(-limit, limit);

        // UPZERO
        let step = if dq == 0 { 0 } else { 128 };
        let sgd = dq >> 15;
        let mut bp = [0i32; 7];
        for ((bp, &d), &b) in bp.iter_mut().zip(&self.d).zip(&self.b).skip(1) {
            let wd2 = if d >> 15 == sgd { step } else { -step };
            let wd3 = (b * 32640) >> 15;
            *bp = sat16(wd2 + wd3);
        }

        // DELAYA
        for i in (2..7).rev() {
            self.d[i] = self.d[i - 1];
        }
        self.d[1] = dq;
        self.b = bp;
        self.r[2] = self.r[1];
        self.r[1] = r0;
        self.p[2] = self.p[1];
        self.p[1] = p0;
        self.a[1] = ap1;
        self.a[2] = ap2;

        // FILTEP
        let wd1 = (self.a[1] * sat16(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * sat16(self.r[2] + self.r[2])) >> 15;
        let sp = sat16(wd1 + wd2);

        // FILTEZ
        let mut sz = 0;
        for i in (1..7).rev() {
            let wd = sat16(self.d[i] + self.d[i]);
            sz += (self.b[i] * wd) >> 15;
        }
        self.sz = sat16(sz);

        // PREDIC
        self.s = sat16(sp + self.sz);
    }

    /// LOGSCL + SCALEL, from the 4-bit lower band code.
    fn adapt_low(&mut self, il4: usize) {
        let nb = ((self.nb * 32512) >> 15) + WL[RL42[il4]];
        self.nb = nb.clamp(0, 18432);
        self.det = scale(self.nb, 8);
    }

    /// LOGSCH + SCALEH, from the 2-bit higher band code.
    fn adapt_high(&mut self, ih: usize) {
        let nb = ((self.nb * 32512) >> 15) + WH[RH2[ih]];
        self.nb = nb.clamp(0, 22528);
        self.det = scale(self.nb, 10);
    }
}

/// QUANTL: 6-bit lower band code of the difference `el`.
fn quantl(el: i32, detl: i32) -> u8 {
    let wd = mag(el);
    let mut i = 1;
    while i < 30 {
        if wd < (Q6[i] * detl) >> 12 {
            break;
        }
        i += 1;
    }
    if el < 0 {
        ILN[i]
    } else {
        ILP[i]
    }
}

/// QUANTH: 2-bit higher band code of the difference `eh`.
fn quanth(eh: i32, deth: i32) -> u8 {
    let wd = mag(eh);
    let large = wd >= (564 * deth) >> 12;
    match (eh < 0, large) {
        (true, false) => 1,
        (true, true) => 0,
        (false, false) => 3,
        (false, true) => 2,
    }
}

/// G.722 64 kbit/s encoder: 16 kHz mono PCM in, one byte per two samples out.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    /// QMF delay line, newest first.
    x: [i32; 24],
    low: Band,
    high: Band,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// A new encoder in the reset state of the recommendation.
    pub fn new() -> Self {
        Self {
            x: [0; 24],
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Encodes one pair of samples (the first is the older) into one byte.
    pub fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // Transmit QMF.
        self.x.copy_within(0..22, 2);
        self.x[1] = i32::from(first);
        self.x[0] = i32::from(second);
        let mut xa = 0i64;
        let mut xb = 0i64;
        for i in 0..12 {
            xa += i64::from(QMF[2 * i]) * i64::from(self.x[2 * i]);
            xb += i64::from(QMF[2 * i + 1]) * i64::from(self.x[2 * i + 1]);
        }
        let xl = sat16(((xa + xb) >> 14) as i32);
        let xh = sat16(((xa - xb) >> 14) as i32);

        // Lower sub-band.
        let el = sat16(xl - self.low.s);
        let il = quantl(el, self.low.det);
        let il4 = usize::from(il >> 2);
        let dlt = (QM4[il4] * self.low.det) >> 15;
        self.low.adapt_low(il4);
        self.low.predictor(dlt);

        // Higher sub-band.
        let eh = sat16(xh - self.high.s);
        let ih = quanth(eh, self.high.det);
        let dh = (QM2[usize::from(ih)] * self.high.det) >> 15;
        self.high.adapt_high(usize::from(ih));
        self.high.predictor(dh);

        (ih << 6) | il
    }
}

impl AudioEncoder for G722Encoder {
    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }
    fn sample_rate(&self) -> u32 {
        16000
    }
    fn channels(&self) -> u16 {
        1
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !pcm.len().is_multiple_of(2) {
            return Err(CodecError::FrameSize(pcm.len()));
        }
        out.reserve(pcm.len() / 2);
        for pair in pcm.chunks_exact(2) {
            out.push(self.encode_pair(pair[0], pair[1]));
        }
        Ok(())
    }
}

/// G.722 64 kbit/s decoder: one byte in, two 16 kHz samples out.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    /// Receive QMF delay lines of xd = rl - rh and xs = rl + rh, newest first.
    xd: [i32; 12],
    xs: [i32; 12],
    low: Band,
    high: Band,
    fade: Fade,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// A new decoder in the reset state of the recommendation.
    pub fn new() -> Self {
        Self {
            xd: [0; 12],
            xs: [0; 12],
            low: Band::new(32),
            high: Band::new(8),
            fade: Fade::default(),
        }
    }

    /// Decodes one byte into a pair of samples (the older first).
    pub fn decode_byte(&mut self, code: u8) -> [i16; 2] {
        let il = usize::from(code & 0x3F);
        let ih = usize::from(code >> 6);

        // Lower sub-band: the output uses the 6-bit code, the predictor loop the 4-bit one.
        let dl = (QM6[il] * self.low.det) >> 15;
        let rl = (self.low.s + dl).clamp(-16384, 16383);
        let il4 = il >> 2;
        let dlt = (QM4[il4] * self.low.det) >> 15;
        self.low.adapt_low(il4);
        self.low.predictor(dlt);

        // Higher sub-band.
        let dh = (QM2[ih] * self.high.det) >> 15;
        let rh = (self.high.s + dh).clamp(-16384, 16383);
        self.high.adapt_high(ih);
        self.high.predictor(dh);

        // Receive QMF.
        self.xd.copy_within(0..11, 1);
        self.xs.copy_within(0..11, 1);
        self.xd[0] = rl - rh;
        self.xs[0] = rl + rh;
        let mut out1 = 0i64;
        let mut out2 = 0i64;
        for i in 0..12 {
            out1 += i64::from(QMF[2 * i]) * i64::from(self.xd[i]);
            out2 += i64::from(QMF[2 * i + 1]) * i64::from(self.xs[i]);
        }
        [sat_i16(out1 >> 11), sat_i16(out2 >> 11)]
    }
}

#[inline]
fn sat_i16(x: i64) -> i16 {
    x.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

impl AudioDecoder for G722Decoder {
    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }
    fn sample_rate(&self) -> u32 {
        16000
    }
    fn channels(&self) -> u16 {
        1
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        out.reserve(payload.len() * 2);
        for &b in payload {
            out.extend_from_slice(&self.decode_byte(b));
        }
        self.fade.remember(&out[start..]);
        Ok(())
    }
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.fade.conceal(samples, 16000, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_factor_limits() {
        assert_eq!(scale(0, 8), 32);
        assert_eq!(scale(18432, 8), 16384);
        assert_eq!(scale(0, 10), 8);
        assert_eq!(scale(22528, 10), 16384);
    }

    #[test]
    fn quantizer_codes() {
        // Smallest interval: 61 positive, 63 negative; never a code below 4.
        assert_eq!(quantl(0, 4096), 61);
        assert_eq!(quantl(-1, 4096), 63);
        assert_eq!(quantl(35, 4096), 60);
        assert_eq!(quantl(-36, 4096), 62);
        assert_eq!(quantl(30000, 32), 32);
        assert_eq!(quantl(-30000, 32), 4);
        for e in -32768..=32767 {
            assert!(quantl(e, 1024) >= 4);
        }
        assert_eq!(quanth(0, 8), 3);
        assert_eq!(quanth(-1, 8), 1);
        assert_eq!(quanth(1000, 8), 2);
        assert_eq!(quanth(-1000, 8), 0);
    }

    #[test]
    fn silence_stays_silent() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bytes = Vec::new();
        enc.encode(&[0; 640], &mut bytes).unwrap();
        assert_eq!(bytes.len(), 320);
        let mut pcm = Vec::new();
        dec.decode(&bytes, &mut pcm).unwrap();
        assert!(pcm.iter().all(|&s| s.abs() < 8), "{pcm:?}");
    }

    #[test]
    fn conceal_fades_out_and_decoding_resumes() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let tone: Vec<i16> = (0..640)
            .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
            .collect();
        let mut bytes = Vec::new();
        enc.encode(&tone, &mut bytes).unwrap();
        let mut out = Vec::new();
        dec.decode(&bytes, &mut out).unwrap();
        out.clear();
        dec.conceal(640, &mut out);
        assert_eq!(out.len(), 640);
        assert!(out[..100].iter().any(|&s| s.abs() > 1000));
        assert!(out[320..].iter().all(|&s| s == 0));
        out.clear();
        dec.decode(&bytes[..160], &mut out).unwrap();
        assert_eq!(out.len(), 320);
    }

    #[test]
    fn odd_frame_is_refused() {
        let mut enc = G722Encoder::new();
        assert_eq!(
            enc.encode(&[0; 3], &mut Vec::new()),
            Err(CodecError::FrameSize(3))
        );
    }

    #[test]
    fn survives_garbage_and_full_scale() {
        let mut dec = G722Decoder::new();
        let payload: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut out = Vec::new();
        dec.decode(&payload, &mut out).unwrap();
        let mut enc = G722Encoder::new();
        let pcm: Vec<i16> = (0..4096)
            .map(|i| if i % 3 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        enc.encode(&pcm, &mut Vec::new()).unwrap();
    }
}
