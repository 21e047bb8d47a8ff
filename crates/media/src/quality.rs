//! Call quality: the ITU-T G.107 E-model (narrowband) and its G.107.1 wideband variant.
//!
//! The E-model rates a connection on the transmission rating scale
//!
//! ```text
//! R = Ro − Is − Id − Ie,eff + A
//! ```
//!
//! where `Ro` is the basic signal-to-noise ratio, `Is` the impairments that occur together with
//! the speech (loudness, sidetone, quantising), `Id` the impairments caused by delay (talker
//! echo, listener echo, pure delay), `Ie,eff` the codec plus packet loss, and `A` the advantage
//! factor. [`EModel`] holds every input of G.107 with its default value (G.107 clause 7.7,
//! table 3); with all defaults it gives R ≈ 93.2, which maps to MOS ≈ 4.41.
//!
//! The wideband model ([`Band::Wide`], G.107.1) uses the extended scale where an ideal
//! wideband connection has `Ro,WB = 129`. The narrowband loudness/noise terms are not part of
//! the wideband model (G.107.1 does not cover them), so `Is,WB = 0`, and the narrowband delay
//! impairment is carried over scaled by 1.29 (see [`EModel::wideband_r`] for this choice).
//! Wideband MOS uses G.107.1 Annex A: `R_X = R_WB / 1.29`, then the G.107 cubic.
//!
//! On top of the model sit a codec table ([`CodecImpairment`]), an estimator of the burst ratio
//! from an observed loss pattern ([`LossPattern`], the two-state Markov estimate used in G.113
//! Appendix I), and a per-stream interval calculator ([`StreamQuality`]) that turns interval
//! statistics (loss, burstiness, jitter, delay) into R and MOS.
//!
//! Everything is plain `f64` arithmetic: no clock, no I/O, no allocation in the model itself.

use crate::codec::CodecKind;

/// Which E-model scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Band {
    /// 300–3400 Hz, ITU-T G.107, R in 0..=100.
    Narrow,
    /// 50–7000 Hz, ITU-T G.107.1, R in 0..=129.
    Wide,
}

impl Band {
    /// The best R of this scale (Ro of an ideal connection).
    pub fn r_max(self) -> f64 {
        match self {
            Band::Narrow => 100.0,
            Band::Wide => RO_WB,
        }
    }
}

/// `Ro,WB` of G.107.1.
pub const RO_WB: f64 = 129.0;

/// Factor between the wideband and the narrowband scale (129 / 100, G.107.1 Annex A).
pub const WB_SCALE: f64 = 1.29;

/// All inputs of the G.107 E-model. `Default` gives the G.107 default values.
///
/// Units as in G.107: loudness ratings and levels in dB, noise in dBm0p / dB(A), delays in ms,
/// `ppl` in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EModel {
    /// Send loudness rating SLR (dB). Default 8.
    pub slr: f64,
    /// Receive loudness rating RLR (dB). Default 2.
    pub rlr: f64,
    /// Sidetone masking rating STMR (dB). Default 15.
    pub stmr: f64,
    /// Listener sidetone rating LSTR (dB). Default 18.
    pub lstr: f64,
    /// D-value of the telephone, send side. Default 3.
    pub ds: f64,
    /// D-value of the telephone, receive side. Default 3.
    pub dr: f64,
    /// Talker echo loudness rating TELR (dB). Default 65.
    pub telr: f64,
    /// Weighted echo path loss WEPL (dB). Default 110.
    pub wepl: f64,
    /// Mean one-way delay of the echo path T (ms). Default 0.
    pub t: f64,
    /// Round-trip delay in a 4-wire loop Tr (ms). Default 0.
    pub tr: f64,
    /// Absolute (mouth-to-ear) delay Ta (ms). Default 0.
    pub ta: f64,
    /// Number of quantising distortion units qdu. Default 1.
    pub qdu: f64,
    /// Equipment impairment factor Ie. Default 0.
    pub ie: f64,
    /// Packet-loss robustness factor Bpl. G.107 leaves it codec dependent; the default here is
    /// G.711 without concealment (4.3, G.113), which does not matter while `ppl` is 0.
    pub bpl: f64,
    /// Random packet-loss probability Ppl in percent. Default 0.
    pub ppl: f64,
    /// Burst ratio BurstR (1 = random loss, > 1 bursty). Default 1. Values below 1 are
    /// treated as 1.
    pub burst_r: f64,
    /// Circuit noise Nc referred to the 0 dBr point (dBm0p). Default −70.
    pub nc: f64,
    /// Noise floor at the receive side Nfor (dBmp). Default −64.
    pub nfor: f64,
    /// Room noise at the send side Ps (dB(A)). Default 35.
    pub ps: f64,
    /// Room noise at the receive side Pr (dB(A)). Default 35.
    pub pr: f64,
    /// Advantage factor A. Default 0.
    pub a: f64,
    /// Delay sensitivity sT of G.107 (2014+) clause 7.4. Default 1.
    pub s_t: f64,
    /// Minimum perceivable delay mT (ms). Default 100.
    pub m_t: f64,
}

impl Default for EModel {
    fn default() -> Self {
        EModel {
            slr: 8.0,
            rlr: 2.0,
            stmr: 15.0,
            lstr: 18.0,
            ds: 3.0,
            dr: 3.0,
            telr: 65.0,
            wepl: 110.0,
            t: 0.0,
            tr: 0.0,
            ta: 0.0,
            qdu: 1.0,
            ie: 0.0,
            bpl: 4.3,
            ppl: 0.0,
            burst_r: 1.0,
            nc: -70.0,
            nfor: -64.0,
            ps: 35.0,
            pr: 35.0,
            a: 0.0,
            s_t: 1.0,
            m_t: 100.0,
        }
    }
}

/// The intermediate factors of one E-model evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    /// Basic signal-to-noise ratio.
    pub ro: f64,
    /// Simultaneous impairment factor.
    pub is: f64,
    /// Delay impairment factor (Idte + Idle + Idd).
    pub id: f64,
    /// Effective equipment impairment factor.
    pub ie_eff: f64,
    /// Advantage factor.
    pub a: f64,
    /// Transmission rating R on the scale of `band`.
    pub r: f64,
    /// Which scale R is on.
    pub band: Band,
}

impl Rating {
    /// MOS (conversational quality estimate) for this R.
    pub fn mos(&self) -> f64 {
        match self.band {
            Band::Narrow => mos_from_r(self.r),
            Band::Wide => mos_from_r_wideband(self.r),
        }
    }
}

fn db_sum(levels: &[f64]) -> f64 {
    10.0 * levels
        .iter()
        .map(|l| 10f64.powf(l / 10.0))
        .sum::<f64>()
        .log10()
}

impl EModel {
    /// Overall loudness rating OLR = SLR + RLR.
    pub fn olr(&self) -> f64 {
        self.slr + self.rlr
    }

    /// Total noise power No (dBm0p): circuit noise, send-side room noise, receive-side room
    /// noise and the receive noise floor, added on a power basis.
    pub fn no(&self) -> f64 {
        // Send-side room noise referred to the 0 dBr point.
        let nos = self.ps - self.slr - self.ds - 100.0
            + 0.004 * (self.ps - self.olr() - self.ds - 14.0).powi(2);
        // Receive-side room noise, raised by the listener sidetone path.
        let pre = self.pr + 10.0 * (1.0 + 10f64.powf((10.0 - self.lstr) / 10.0)).log10();
        let nor = self.rlr - 121.0 + pre + 0.008 * (pre - 35.0).powi(2);
        let nfo = self.nfor + self.rlr;
        db_sum(&[self.nc, nos, nor, nfo])
    }

    /// Basic signal-to-noise ratio Ro = 15 − 1.5·(SLR + No).
    pub fn ro(&self) -> f64 {
        15.0 - 1.5 * (self.slr + self.no())
    }

    /// Sidetone impairment Ist, a function of the echo-adjusted STMRo.
    fn ist(&self) -> f64 {
        let stmro = -10.0
            * (10f64.powf(-self.stmr / 10.0)
                + (-self.t / 4.0).exp() * 10f64.powf(-self.telr / 10.0))
            .log10();
        12.0 * (1.0 + ((stmro - 13.0) / 6.0).powi(8)).powf(1.0 / 8.0)
            - 28.0 * (1.0 + ((stmro + 1.0) / 19.4).powi(35)).powf(1.0 / 35.0)
            - 13.0 * (1.0 + ((stmro - 3.0) / 33.0).powi(13)).powf(1.0 / 13.0)
            + 29.0
    }

    /// Simultaneous impairment Is = Iolr + Ist + Iq.
    pub fn is(&self) -> f64 {
        let no = self.no();
        let ro = self.ro();
        // Too-loud/too-quiet connection.
        let xolr = self.olr() + 0.2 * (64.0 + no - self.rlr);
        let iolr = 20.0 * ((1.0 + (xolr / 8.0).powi(8)).powf(1.0 / 8.0) - xolr / 8.0);
        // Quantising distortion.
        let q = 37.0 - 15.0 * self.qdu.max(f64::MIN_POSITIVE).log10();
        let g = 1.07 + 0.258 * q + 0.0602 * q * q;
        let y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0;
        let z = 46.0 / 30.0 - g / 40.0;
        let iq = 15.0 * (1.0 + 10f64.powf(y) + 10f64.powf(z)).log10();
        iolr + self.ist() + iq
    }

    /// Talker-echo impairment Idte.
    pub fn idte(&self) -> f64 {
        let t = self.t.max(0.0);
        let roe = -1.5 * (self.no() - self.rlr);
        let mut terv = self.telr - 40.0 * ((1.0 + t / 10.0) / (1.0 + t / 150.0)).log10()
            + 6.0 * (-0.3 * t * t).exp();
        let ist = self.ist();
        if self.stmr < 9.0 {
            // Low sidetone masks less of the echo.
            terv += ist / 2.0;
        }
        let re = 80.0 + 2.5 * (terv - 14.0);
        let d = roe - re;
        let idte = (d / 2.0 + (d * d / 4.0 + 100.0).sqrt() - 1.0) * (1.0 - (-t).exp());
        if self.stmr > 20.0 {
            // Very high sidetone: the sidetone and echo impairments combine.
            (idte * idte + ist * ist).sqrt()
        } else {
            idte
        }
    }

    /// Listener-echo impairment Idle.
    pub fn idle(&self) -> f64 {
        let ro = self.ro();
        let rle = 10.5 * (self.wepl + 7.0) * (self.tr.max(0.0) + 1.0).powf(-0.25);
        let d = ro - rle;
        d / 2.0 + (d * d / 4.0 + 169.0).sqrt()
    }

    /// Pure-delay impairment Idd (0 up to mT, then the G.107 sigmoid in log2(Ta/mT)).
    pub fn idd(&self) -> f64 {
        idd(self.ta, self.m_t, self.s_t)
    }

    /// Delay impairment Id = Idte + Idle + Idd.
    pub fn id(&self) -> f64 {
        self.idte() + self.idle() + self.idd()
    }

    /// Effective equipment impairment Ie,eff = Ie + (95 − Ie)·Ppl / (Ppl/BurstR + Bpl).
    pub fn ie_eff(&self) -> f64 {
        ie_eff(self.ie, self.bpl, self.ppl, self.burst_r, 95.0)
    }

    /// Narrowband R = Ro − Is − Id − Ie,eff + A, with all factors.
    pub fn rate(&self) -> Rating {
        let ro = self.ro();
        let is = self.is();
        let id = self.id();
        let ie_eff = self.ie_eff();
        Rating {
            ro,
            is,
            id,
            ie_eff,
            a: self.a,
            r: ro - is - id - ie_eff + self.a,
            band: Band::Narrow,
        }
    }

    /// Narrowband transmission rating R.
    pub fn r(&self) -> f64 {
        self.rate().r
    }

    /// Wideband (G.107.1) rating. `self.ie` and `self.bpl` are read as the wideband values
    /// Ie,WB and Bpl of the codec.
    ///
    /// `R_WB = Ro,WB − Is,WB − Id,WB − Ie,eff,WB + A` with
    /// * `Ro,WB = 129` (the loudness and noise terms are not part of the wideband model),
    /// * `Is,WB = 0` (idem),
    /// * `Id,WB = 1.29 · Id`: the narrowband delay and echo impairment (computed with the
    ///   narrowband inputs of `self`) carried over to the extended scale by the same factor
    ///   that relates the two scales. This is our choice: it keeps the wideband rating of a
    ///   delayed call consistent with `R_WB ≈ 1.29·R_NB` for equal impairments; G.107.1's own
    ///   delay terms may differ slightly.
    /// * `Ie,eff,WB = Ie,WB + (129 − Ie,WB)·Ppl / (Ppl/BurstR + Bpl)`: the G.107 form with the
    ///   95 of the narrowband scale replaced by 129. With BurstR = 1 this is the random-loss
    ///   formula of G.107.1.
    pub fn wideband_r(&self) -> Rating {
        let id = WB_SCALE * self.id();
        let ie_eff = ie_eff(self.ie, self.bpl, self.ppl, self.burst_r, RO_WB);
        Rating {
            ro: RO_WB,
            is: 0.0,
            id,
            ie_eff,
            a: self.a,
            r: RO_WB - id - ie_eff + self.a,
            band: Band::Wide,
        }
    }

    /// Rates on the given scale.
    pub fn rate_band(&self, band: Band) -> Rating {
        match band {
            Band::Narrow => self.rate(),
            Band::Wide => self.wideband_r(),
        }
    }
}

/// Pure-delay impairment Idd for a mouth-to-ear delay `ta` (ms), with the delay sensitivity
/// parameters of G.107 (`m_t` = 100 ms, `s_t` = 1 by default).
pub fn idd(ta: f64, m_t: f64, s_t: f64) -> f64 {
    if ta.is_nan() || ta <= m_t || m_t <= 0.0 || s_t <= 0.0 {
        return 0.0;
    }
    let x = (ta / m_t).log2();
    let e = 6.0 * s_t;
    25.0 * ((1.0 + x.powf(e)).powf(1.0 / e) - 3.0 * (1.0 + (x / 3.0).powf(e)).powf(1.0 / e) + 2.0)
}

/// `Ie + (top − Ie)·Ppl / (Ppl/BurstR + Bpl)`, `ppl` in percent.
fn ie_eff(ie: f64, bpl: f64, ppl: f64, burst_r: f64, top: f64) -> f64 {
    let ppl = ppl.clamp(0.0, 100.0);
    if ppl == 0.0 {
        return ie;
    }
    let burst_r = if burst_r.is_finite() {
        burst_r.max(1.0)
    } else {
        1.0
    };
    ie + (top - ie) * ppl / (ppl / burst_r + bpl.max(0.0))
}

/// MOS (conversational quality estimate, 1..=4.5) from a narrowband R (G.107 Annex B):
/// 1 for R ≤ 0, 4.5 for R ≥ 100, otherwise `1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶`.
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        let mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6;
        // The cubic dips a hair below 1 for very small R; MOS is 1..=4.5 by definition.
        mos.clamp(1.0, 4.5)
    }
}

/// MOS from a wideband R (G.107.1 Annex A): `R_X = R / 1.29`, then [`mos_from_r`]. So
/// `R_WB = 129` gives 4.5.
pub fn mos_from_r_wideband(r_wb: f64) -> f64 {
    mos_from_r(r_wb / WB_SCALE)
}

/// E-model parameters of a codec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Which codec.
    pub kind: CodecKind,
    /// The scale the codec is native to.
    pub band: Band,
    /// Equipment impairment Ie on the narrowband scale.
    pub ie: f64,
    /// Equipment impairment Ie,WB on the wideband scale.
    pub ie_wb: f64,
    /// Packet-loss robustness Bpl.
    pub bpl: f64,
    /// Algorithmic delay beyond the frame itself (look-ahead, filter banks), in ms.
    pub lookahead_ms: f64,
    /// Whether the values are an estimate rather than tabulated in ITU-T G.113.
    pub estimate: bool,
}

impl CodecImpairment {
    /// Table values for `kind`; `plc` says whether the receiver conceals lost frames.
    ///
    /// * G.711 (PCMU/PCMA): Ie 0; Bpl 4.3 without concealment, 25.1 with the G.711 Appendix I
    ///   concealment (G.113 Appendix I). On the wideband scale a narrowband G.711 call scores
    ///   Ie,WB 36: the gap between Ro,WB = 129 and the narrowband default R 93.2, rounded.
    /// * G.722 at 64 kbit/s: Ie,WB 13 and Bpl 21.2 (G.113 Amendment, wideband tables; with
    ///   concealment). Without concealment we use Bpl 4.3 as for G.711 (estimate). On the
    ///   narrowband scale Ie 0 (band-limited to 300–3400 Hz it is no worse than G.711).
    /// * Opus: **estimate**, Opus is not in G.113. Ie,WB 10 and Bpl 25 (20 without PLC).
    ///   Published listening tests and POLQA studies of Opus in WebRTC (e.g. the HfTL "Audio
    ///   and speech quality survey of the Opus codec in web real-time communication") rate
    ///   wideband Opus at the bitrates WebRTC uses (≥ 20 kbit/s) at least as well as G.722 at
    ///   64 kbit/s, so we put it slightly better than G.722 (13); its built-in concealment is
    ///   credited like G.711 with PLC. Narrowband Ie 0. Look-ahead 6.5 ms (RFC 6716 default
    ///   mode: 2.5 ms look-ahead + 4 ms resampling/overlap).
    pub fn of(kind: CodecKind, plc: bool) -> CodecImpairment {
        match kind {
            CodecKind::Pcmu | CodecKind::Pcma => CodecImpairment {
                kind,
                band: Band::Narrow,
                ie: 0.0,
                ie_wb: 36.0,
                bpl: if plc { 25.1 } else { 4.3 },
                lookahead_ms: 0.0,
                estimate: false,
            },
            CodecKind::G722 => CodecImpairment {
                kind,
                band: Band::Wide,
                ie: 0.0,
                ie_wb: 13.0,
                bpl: if plc { 21.2 } else { 4.3 },
                lookahead_ms: 1.5,
                estimate: !plc,
            },
            CodecKind::Opus => CodecImpairment {
                kind,
                band: Band::Wide,
                ie: 0.0,
                ie_wb: 10.0,
                bpl: if plc { 25.0 } else { 20.0 },
                lookahead_ms: 6.5,
                estimate: true,
            },
        }
    }

    /// Ie on the scale of `band`.
    pub fn ie_for(&self, band: Band) -> f64 {
        match band {
            Band::Narrow => self.ie,
            Band::Wide => self.ie_wb,
        }
    }
}

/// Burst ratio estimate from an observed loss sequence: a two-state Markov model (found/lost)
/// fitted by counting transitions, the model behind the BurstR input of G.107 and the
/// dependent-loss values of G.113.
///
/// With `p` = P(lost | previous found) and `q` = P(found | previous lost),
/// `BurstR = 1 / (p + q)`. For independent (random) loss `p + q = 1`, so BurstR = 1; losses
/// that clump give `p + q < 1`, BurstR > 1. Equivalently BurstR is the mean observed burst
/// length divided by the mean burst length `1 / (1 − Ppl)` of random loss; that form is the
/// fallback when a transition probability cannot be estimated (e.g. the only loss is the last
/// packet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossPattern {
    prev_lost: Option<bool>,
    received: u64,
    lost: u64,
    bursts: u64,
    /// Transitions out of the found state (found → anything).
    from_found: u64,
    /// found → lost.
    found_to_lost: u64,
    /// Transitions out of the lost state.
    from_lost: u64,
    /// lost → found.
    lost_to_found: u64,
}

impl LossPattern {
    /// An empty pattern.
    pub fn new() -> LossPattern {
        LossPattern::default()
    }

    /// Records the next packet in sequence order.
    pub fn push(&mut self, lost: bool) {
        match self.prev_lost {
            Some(false) => {
                self.from_found += 1;
                if lost {
                    self.found_to_lost += 1;
                }
            }
            Some(true) => {
                self.from_lost += 1;
                if !lost {
                    self.lost_to_found += 1;
                }
            }
            None => {}
        }
        if lost {
            self.lost += 1;
            if self.prev_lost != Some(true) {
                self.bursts += 1;
            }
        } else {
            self.received += 1;
        }
        self.prev_lost = Some(lost);
    }

    /// Records `n` packets received in a row.
    pub fn push_received(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.push(false);
        // The remaining n − 1 are found → found transitions.
        self.from_found += n - 1;
        self.received += n - 1;
    }

    /// Records `n` packets lost in a row.
    pub fn push_lost(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.push(true);
        self.from_lost += n - 1;
        self.lost += n - 1;
    }

    /// Packets recorded.
    pub fn total(&self) -> u64 {
        self.received + self.lost
    }

    /// Packets lost.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Loss fraction (0..=1).
    pub fn loss_fraction(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            self.lost as f64 / self.total() as f64
        }
    }

    /// Number of loss bursts (runs of consecutive losses).
    pub fn bursts(&self) -> u64 {
        self.bursts
    }

    /// Estimated burst ratio, ≥ 0; 1 when nothing (or everything) was lost. Values below 1
    /// (losses more spread out than random) are returned as estimated; the E-model treats
    /// them as 1.
    pub fn burst_ratio(&self) -> f64 {
        if self.lost == 0 || self.received == 0 {
            return 1.0;
        }
        if self.from_found > 0 && self.from_lost > 0 {
            let p = self.found_to_lost as f64 / self.from_found as f64;
            let q = self.lost_to_found as f64 / self.from_lost as f64;
            if p + q > 0.0 {
                return 1.0 / (p + q);
            }
        }
        let mean_burst = self.lost as f64 / self.bursts.max(1) as f64;
        mean_burst * (1.0 - self.loss_fraction())
    }

    /// Forgets everything (start of a new interval).
    pub fn reset(&mut self) {
        *self = LossPattern::default();
    }
}

/// What a stream saw during one measurement interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IntervalStats {
    /// Fraction of packets lost (after the jitter buffer, i.e. including late discards),
    /// 0..=1.
    pub loss_fraction: f64,
    /// Burst ratio (see [`LossPattern::burst_ratio`]); 0 or non-finite means "unknown" → 1.
    pub burst_ratio: f64,
    /// Interarrival jitter in ms (RFC 3550).
    pub jitter_ms: f64,
    /// Network one-way delay in ms, if known.
    pub one_way_delay_ms: Option<f64>,
    /// Round-trip time in ms (used as RTT/2 when the one-way delay is unknown).
    pub rtt_ms: Option<f64>,
    /// Delay added by the jitter buffer in ms. Unknown → 2 × jitter.
    pub jitter_buffer_ms: Option<f64>,
}

impl IntervalStats {
    /// Fills loss fraction and burst ratio from an observed loss pattern.
    pub fn with_pattern(mut self, pattern: &LossPattern) -> IntervalStats {
        self.loss_fraction = pattern.loss_fraction();
        self.burst_ratio = pattern.burst_ratio();
        self
    }
}

/// The quality of one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalScore {
    /// Mouth-to-ear delay used for Ta, in ms.
    pub mouth_to_ear_ms: f64,
    /// The full rating.
    pub rating: Rating,
    /// MOS of this interval.
    pub mos: f64,
}

/// Per-stream quality calculator: feed it one [`IntervalStats`] per report interval, get R and
/// MOS per interval and a running average.
///
/// The mouth-to-ear delay is `network one-way + jitter buffer + frame (ptime) + codec
/// look-ahead + extra` (extra: e.g. fixed processing delay of endpoints). The E-model echo
/// terms use `T = Ta` and `Tr = 2·Ta` (echo path equal to the speech path), which with the
/// default TELR 65 dB (echo cancelled) adds only a little.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamQuality {
    codec: CodecImpairment,
    band: Band,
    ptime_ms: f64,
    extra_delay_ms: f64,
    base: EModel,
    intervals: u64,
    r_sum: f64,
    r_min: f64,
    last: Option<IntervalScore>,
}

impl StreamQuality {
    /// A calculator for `codec` with frames of `ptime_ms`, rated on the codec's native scale.
    pub fn new(codec: CodecImpairment, ptime_ms: f64) -> StreamQuality {
        StreamQuality {
            codec,
            band: codec.band,
            ptime_ms: ptime_ms.max(0.0),
            extra_delay_ms: 0.0,
            base: EModel::default(),
            intervals: 0,
            r_sum: 0.0,
            r_min: f64::INFINITY,
            last: None,
        }
    }

    /// Rate on `band` instead of the codec's native scale (e.g. compare a G.711 leg with a
    /// wideband one on the wideband scale).
    pub fn with_band(mut self, band: Band) -> StreamQuality {
        self.band = band;
        self
    }

    /// Fixed delay added to every interval (endpoint processing, playout), ms.
    pub fn with_extra_delay(mut self, ms: f64) -> StreamQuality {
        self.extra_delay_ms = ms.max(0.0);
        self
    }

    /// Non-default E-model inputs (loudness, noise, echo, advantage factor). Codec, loss and
    /// delay fields are overwritten per interval.
    pub fn with_model(mut self, base: EModel) -> StreamQuality {
        self.base = base;
        self
    }

    /// Rates one interval and folds it into the running statistics.
    pub fn interval(&mut self, stats: &IntervalStats) -> IntervalScore {
        let score = self.rate(stats);
        self.intervals += 1;
        self.r_sum += score.rating.r;
        self.r_min = self.r_min.min(score.rating.r);
        self.last = Some(score);
        score
    }

    /// Rates one interval without changing the running statistics.
    pub fn rate(&self, stats: &IntervalStats) -> IntervalScore {
        let finite = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
        let network = match (stats.one_way_delay_ms, stats.rtt_ms) {
            (Some(d), _) => finite(d),
            (None, Some(rtt)) => finite(rtt) / 2.0,
            (None, None) => 0.0,
        };
        let jitter = finite(stats.jitter_ms);
        let buffer = stats.jitter_buffer_ms.map_or(2.0 * jitter, finite);
        let ta = network + buffer + self.ptime_ms + self.codec.lookahead_ms + self.extra_delay_ms;
        let burst_r = if stats.burst_ratio.is_finite() && stats.burst_ratio > 0.0 {
            stats.burst_ratio
        } else {
            1.0
        };
        let model = EModel {
            ta,
            t: ta,
            tr: 2.0 * ta,
            ie: self.codec.ie_for(self.band),
            bpl: self.codec.bpl,
            ppl: 100.0 * finite(stats.loss_fraction).min(1.0),
            burst_r,
            ..self.base
        };
        let rating = model.rate_band(self.band);
        IntervalScore {
            mouth_to_ear_ms: ta,
            rating,
            mos: rating.mos(),
        }
    }

    /// The scale R is reported on.
    pub fn band(&self) -> Band {
        self.band
    }

    /// The last interval's score.
    pub fn last(&self) -> Option<IntervalScore> {
        self.last
    }

    /// Intervals rated so far.
    pub fn intervals(&self) -> u64 {
        self.intervals
    }

    /// Mean R over all intervals.
    pub fn average_r(&self) -> Option<f64> {
        (self.intervals > 0).then(|| self.r_sum / self.intervals as f64)
    }

    /// MOS of the mean R.
    pub fn average_mos(&self) -> Option<f64> {
        self.average_r().map(|r| match self.band {
            Band::Narrow => mos_from_r(r),
            Band::Wide => mos_from_r_wideband(r),
        })
    }

    /// Worst interval R.
    pub fn min_r(&self) -> Option<f64> {
        (self.intervals > 0).then_some(self.r_min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn default_values_give_93_2() {
        let m = EModel::default();
        let rating = m.rate();
        // Hand check of the parts (G.107 defaults):
        // Nos = 35 − 8 − 3 − 100 + 0.004·(35 − 10 − 3 − 14)² = −75.744
        // Pre = 35 + 10·log10(1 + 10^−0.8) = 35.639; Nor = 2 − 121 + 35.639 + 0.008·0.639² ≈ −83.358
        // Nfo = −64 + 2 = −62; No = 10·log10(10^−7 + 10^−7.5744 + 10^−8.3358 + 10^−6.2) ≈ −61.18
        // Ro = 15 − 1.5·(8 − 61.18) ≈ 94.77
        assert!(close(m.no(), -61.18, 0.01), "No {}", m.no());
        assert!(close(rating.ro, 94.77, 0.01), "Ro {}", rating.ro);
        // Is ≈ Iolr 0.44 + Ist ≈ 0 + Iq ≈ 0.97 ≈ 1.41.
        assert!(close(rating.is, 1.41, 0.02), "Is {}", rating.is);
        assert!(close(rating.id, 0.15, 0.01), "Id {}", rating.id);
        assert_eq!(rating.ie_eff, 0.0);
        assert!(close(rating.r, 93.2, 0.05), "R {}", rating.r);
        assert!(close(rating.mos(), 4.41, 0.005), "MOS {}", rating.mos());
    }

    #[test]
    fn mos_mapping_end_points() {
        assert_eq!(mos_from_r(0.0), 1.0);
        assert_eq!(mos_from_r(-20.0), 1.0);
        assert_eq!(mos_from_r(f64::NAN), 1.0);
        assert_eq!(mos_from_r(100.0), 4.5);
        assert_eq!(mos_from_r(120.0), 4.5);
        // R = 50: 1 + 1.75 + 50·(−10)·50·7e−6 = 2.75 − 0.175 = 2.575
        assert!(close(mos_from_r(50.0), 2.575, 1e-9));
        // R = 80: 1 + 2.8 + 80·20·20·7e−6 = 3.8 + 0.224 = 4.024
        assert!(close(mos_from_r(80.0), 4.024, 1e-9));
        // Monotone over the whole scale.
        let mut prev = 1.0;
        for i in 0..=1000 {
            let m = mos_from_r(i as f64 / 10.0);
            assert!(m >= prev, "MOS not monotone at R {}", i as f64 / 10.0);
            prev = m;
        }
    }

    #[test]
    fn idd_hand_values() {
        // Ta = 150: X = log2(1.5) = 0.58496; X⁶ = 0.040065; (1.040065)^(1/6) = 1.006569;
        //   (X/3)⁶ = 5.496e−5 → (1 + …)^(1/6) = 1.0000092;
        //   Idd = 25·(1.006569 − 3.0000275 + 2) = 0.1635
        assert!(
            close(idd(150.0, 100.0, 1.0), 0.1635, 0.002),
            "{}",
            idd(150.0, 100.0, 1.0)
        );
        // Ta = 300: X = log2 3 = 1.58496; X⁶ = 15.853 → 16.853^(1/6) = 1.601197;
        //   (X/3)⁶ = 0.021747 → 1.021747^(1/6) = 1.003592;
        //   Idd = 25·(1.601197 − 3.010776 + 2) = 14.760
        assert!(
            close(idd(300.0, 100.0, 1.0), 14.760, 0.01),
            "{}",
            idd(300.0, 100.0, 1.0)
        );
        // Ta = 400: X = 2; 65^(1/6) = 2.005175; (2/3)⁶ = 0.087791 → 1.087791^(1/6) = 1.014124;
        //   Idd = 25·(2.005175 − 3.042373 + 2) = 24.070
        assert!(
            close(idd(400.0, 100.0, 1.0), 24.070, 0.01),
            "{}",
            idd(400.0, 100.0, 1.0)
        );
        // Up to mT nothing.
        assert_eq!(idd(100.0, 100.0, 1.0), 0.0);
        assert_eq!(idd(50.0, 100.0, 1.0), 0.0);
    }

    #[test]
    fn id_with_echo_terms_at_150_ms() {
        // T = Ta = 150, Tr = 300, other inputs default.
        let m = EModel {
            t: 150.0,
            tr: 300.0,
            ta: 150.0,
            ..EModel::default()
        };
        // Idte: TERV = 65 − 40·log10((1 + 15)/(1 + 1)) + 6·e^(−6750) = 65 − 36.124 = 28.876
        //   Re = 80 + 2.5·(28.876 − 14) = 117.19; Roe = −1.5·(No − RLR) = −1.5·(−63.18) = 94.77
        //   Roe − Re = −22.42 → Idte = −11.21 + √(125.7 + 100) − 1 = 2.81
        assert!(close(m.idte(), 2.81, 0.02), "Idte {}", m.idte());
        // Idle: Rle = 10.5·117·301^(−1/4) = 1228.5 / 4.1653 = 294.94
        //   Ro − Rle = −200.17 → Idle = −100.08 + √(10017 + 169) = 0.84
        assert!(close(m.idle(), 0.84, 0.02), "Idle {}", m.idle());
        assert!(close(m.id(), 2.81 + 0.84 + 0.1635, 0.05), "Id {}", m.id());
    }

    #[test]
    fn id_grows_with_delay() {
        let id_at = |ta: f64| {
            EModel {
                t: ta,
                tr: 2.0 * ta,
                ta,
                ..EModel::default()
            }
            .id()
        };
        let (a, b, c) = (id_at(150.0), id_at(300.0), id_at(400.0));
        assert!(a < b && b < c, "{a} {b} {c}");
        // The pure-delay part dominates at 300/400 ms.
        assert!(b > 14.76 && c > 24.07);
    }

    #[test]
    fn ie_eff_formula() {
        // G.711 with PLC, 2 % random loss: 0 + 95·2/(2 + 25.1) = 7.011
        let m = EModel {
            ie: 0.0,
            bpl: 25.1,
            ppl: 2.0,
            ..EModel::default()
        };
        assert!(close(m.ie_eff(), 190.0 / 27.1, 1e-9));
        // Same loss in bursts of BurstR 2: 95·2/(1 + 25.1) = 7.280
        let m2 = EModel { burst_r: 2.0, ..m };
        assert!(close(m2.ie_eff(), 190.0 / 26.1, 1e-9));
        assert!(m2.ie_eff() > m.ie_eff());
        // BurstR below 1 counts as 1.
        let m3 = EModel { burst_r: 0.5, ..m };
        assert_eq!(m3.ie_eff(), m.ie_eff());
    }

    #[test]
    fn more_loss_or_delay_lowers_r() {
        let mut prev = f64::INFINITY;
        for ppl in [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0] {
            let r = EModel {
                bpl: 25.1,
                ppl,
                ..EModel::default()
            }
            .r();
            assert!(r < prev, "R not decreasing at Ppl {ppl}");
            prev = r;
        }
        let mut prev = f64::INFINITY;
        for ta in [0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0] {
            let r = EModel {
                t: ta,
                tr: 2.0 * ta,
                ta,
                ..EModel::default()
            }
            .r();
            assert!(r < prev, "R not decreasing at Ta {ta}");
            prev = r;
        }
        let mut prev = f64::INFINITY;
        for burst_r in [1.0, 1.5, 2.0, 4.0] {
            let r = EModel {
                bpl: 25.1,
                ppl: 5.0,
                burst_r,
                ..EModel::default()
            }
            .r();
            assert!(r < prev, "R not decreasing at BurstR {burst_r}");
            prev = r;
        }
    }

    #[test]
    fn wideband_default() {
        let m = EModel {
            ie: 0.0,
            ..EModel::default()
        };
        let wb = m.wideband_r();
        // Id,WB = 1.29·0.15 ≈ 0.19 → R ≈ 128.8; the ideal connection is exactly 129.
        assert!(close(wb.r, 128.8, 0.05), "R_WB {}", wb.r);
        assert!(wb.mos() > 4.49, "MOS {}", wb.mos());
        assert_eq!(mos_from_r_wideband(129.0), 4.5);
        assert_eq!(mos_from_r_wideband(0.0), 1.0);
        // R_WB 93.2·1.29 maps to the narrowband MOS of 93.2.
        assert!(close(
            mos_from_r_wideband(93.2 * 1.29),
            mos_from_r(93.2),
            1e-9
        ));
        // G.722 with PLC: 129 − 13 − Id,WB ≈ 115.8; 2 % loss → + (129 − 13)·2/(2 + 21.2) = 10.0
        let g722 = CodecImpairment::of(CodecKind::G722, true);
        let m = EModel {
            ie: g722.ie_wb,
            bpl: g722.bpl,
            ppl: 2.0,
            ..EModel::default()
        };
        let wb = m.wideband_r();
        assert!(close(wb.ie_eff, 13.0 + 116.0 * 2.0 / 23.2, 1e-9));
        assert!(wb.r < 129.0 - 13.0 && wb.r > 100.0);
    }

    #[test]
    fn advantage_factor_adds_to_r() {
        let base = EModel::default().r();
        let mobile = EModel {
            a: 10.0,
            ..EModel::default()
        }
        .r();
        assert!(close(mobile - base, 10.0, 1e-9));
    }

    #[test]
    fn narrowband_codec_on_wideband_scale() {
        // G.711 rated on the wideband scale: 129 − 36 − Id,WB (≈ 0.19) ≈ 92.8, i.e. about the
        // narrowband default on the narrowband scale (R_X = 92.8 / 1.29 ≈ 71.9 → MOS ≈ 3.7),
        // clearly below a clean G.722 call (129 − 13 − 0.19 ≈ 115.8 → R_X ≈ 89.8 → MOS ≈ 4.3).
        let g711 = CodecImpairment::of(CodecKind::Pcma, true);
        let g722 = CodecImpairment::of(CodecKind::G722, true);
        let stats = IntervalStats::default();
        let nb = StreamQuality::new(g711, 0.0)
            .with_band(Band::Wide)
            .rate(&stats);
        let wb = StreamQuality::new(g722, 0.0).rate(&stats);
        assert!(close(nb.rating.r, 92.8, 0.1), "{nb:?}");
        assert!(close(wb.rating.r, 115.8, 0.1), "{wb:?}");
        assert!(close(nb.mos, mos_from_r(nb.rating.r / 1.29), 1e-12));
        assert!(nb.mos < wb.mos);
    }

    #[test]
    fn codec_table() {
        let pcmu = CodecImpairment::of(CodecKind::Pcmu, false);
        assert_eq!((pcmu.ie, pcmu.bpl), (0.0, 4.3));
        let pcma = CodecImpairment::of(CodecKind::Pcma, true);
        assert_eq!((pcma.ie, pcma.bpl), (0.0, 25.1));
        let g722 = CodecImpairment::of(CodecKind::G722, true);
        assert_eq!((g722.band, g722.ie_wb, g722.bpl), (Band::Wide, 13.0, 21.2));
        let opus = CodecImpairment::of(CodecKind::Opus, true);
        assert!(opus.estimate);
        assert_eq!(opus.band, Band::Wide);
    }

    /// Deterministic xorshift for test sequences.
    struct Rng(u64);
    impl Rng {
        fn next_f64(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn burst_ratio_random_loss_is_one() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut p = LossPattern::new();
        for _ in 0..200_000 {
            p.push(rng.next_f64() < 0.05);
        }
        assert!(close(p.loss_fraction(), 0.05, 0.005));
        assert!(
            close(p.burst_ratio(), 1.0, 0.05),
            "BurstR {}",
            p.burst_ratio()
        );
    }

    #[test]
    fn burst_ratio_bursty_loss_above_one() {
        // Bursts of 4 lost after 76 received: L = 0.05, mean burst 4 → BurstR = 4·0.95 = 3.8.
        // Markov: p = 1/76, q = 1/4 → 1/(0.013158 + 0.25) = 3.8.
        let mut p = LossPattern::new();
        for _ in 0..1000 {
            p.push_received(76);
            p.push_lost(4);
        }
        assert!(close(p.loss_fraction(), 0.05, 1e-9));
        assert!(
            close(p.burst_ratio(), 3.8, 0.01),
            "BurstR {}",
            p.burst_ratio()
        );
        assert_eq!(p.bursts(), 1000);

        // Gilbert-style random bursts are also > 1.
        let mut rng = Rng(12345);
        let mut q = LossPattern::new();
        let mut lost = false;
        for _ in 0..200_000 {
            let x = rng.next_f64();
            lost = if lost { x < 0.7 } else { x < 0.02 };
            q.push(lost);
        }
        // p = 0.02, q = 0.3 → BurstR ≈ 1/0.32 = 3.125
        assert!(
            close(q.burst_ratio(), 3.125, 0.2),
            "BurstR {}",
            q.burst_ratio()
        );
    }

    #[test]
    fn burst_ratio_edge_cases() {
        let mut p = LossPattern::new();
        assert_eq!(p.burst_ratio(), 1.0);
        p.push_received(10);
        assert_eq!(p.burst_ratio(), 1.0);
        // Only the last packet lost: no transition out of the lost state, fallback form:
        // mean burst 1 · (1 − 1/11) = 0.909.
        p.push(true);
        assert!(close(p.burst_ratio(), 10.0 / 11.0, 1e-9));
        let mut all = LossPattern::new();
        all.push_lost(5);
        assert_eq!(all.burst_ratio(), 1.0);
        all.reset();
        assert_eq!(all.total(), 0);
    }

    #[test]
    fn stream_interval_calculator() {
        let mut s = StreamQuality::new(CodecImpairment::of(CodecKind::Pcmu, true), 20.0);
        let clean = s.interval(&IntervalStats {
            one_way_delay_ms: Some(20.0),
            jitter_buffer_ms: Some(40.0),
            ..IntervalStats::default()
        });
        // Ta = 20 + 40 + 20 = 80 ms < 100: no Idd, only the echo terms (Idte ≈ 2 at T = 80 ms
        // with TELR 65), so R ≈ 91.1.
        assert!(close(clean.mouth_to_ear_ms, 80.0, 1e-9));
        assert!(
            close(clean.rating.r, 91.1, 0.1) && clean.mos > 4.3,
            "{clean:?}"
        );

        let mut pattern = LossPattern::new();
        for _ in 0..50 {
            pattern.push_received(45);
            pattern.push_lost(5);
        }
        let lossy = s.interval(
            &IntervalStats {
                jitter_ms: 30.0,
                rtt_ms: Some(300.0),
                ..IntervalStats::default()
            }
            .with_pattern(&pattern),
        );
        // Ta = 150 + 2·30 + 20 = 230 ms, 10 % loss in bursts of 5.
        assert!(close(lossy.mouth_to_ear_ms, 230.0, 1e-9));
        assert!(lossy.rating.r < clean.rating.r - 20.0, "{lossy:?}");
        assert!(lossy.mos < clean.mos);
        assert_eq!(s.intervals(), 2);
        assert!(close(
            s.average_r().unwrap(),
            (clean.rating.r + lossy.rating.r) / 2.0,
            1e-9
        ));
        assert_eq!(s.min_r(), Some(lossy.rating.r));
        assert!(s.average_mos().unwrap() < clean.mos);

        // Opus on the wideband scale, clean: R_WB near 129 − 10.
        let opus = StreamQuality::new(CodecImpairment::of(CodecKind::Opus, true), 20.0);
        let score = opus.rate(&IntervalStats::default());
        assert_eq!(score.rating.band, Band::Wide);
        assert!(
            score.rating.r > 115.0 && score.rating.r <= 119.0,
            "{score:?}"
        );

        // Garbage inputs do not produce NaN.
        let g = s.rate(&IntervalStats {
            loss_fraction: f64::NAN,
            burst_ratio: f64::INFINITY,
            jitter_ms: -5.0,
            one_way_delay_ms: Some(f64::NAN),
            rtt_ms: None,
            jitter_buffer_ms: None,
        });
        assert!(g.rating.r.is_finite() && g.mos.is_finite());
    }
}
