//! Simulcast layer choice for one subscribed video track, with no network and no clock:
//! the forwarder asks "which rid should this subscriber get now?" and "may I switch now?".
//!
//! A camera publishes up to three layers, named by rid: `q` (quarter), `h` (half), `f` (full).
//! A subscriber gets exactly one of them. The choice is bounded by two things: the size the
//! subscriber asked for (`set_subscription`) and the bandwidth its estimate (TWCC) leaves for this
//! track. Switching only happens on a keyframe of the new layer, or the decoder would see
//! garbage; until that keyframe arrives the old layer keeps flowing.

use str0m::media::Rid;

/// The layers a simulcast publisher may send, lowest first.
pub const LAYER_RIDS: [&str; 3] = ["q", "h", "f"];

/// Index of a layer in [`LAYER_RIDS`] (0 = lowest), or `None` for an unknown rid.
pub fn layer_index(rid: &Rid) -> Option<usize> {
    LAYER_RIDS.iter().position(|r| **r == **rid)
}

/// What the forwarder knows of one published layer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LayerInfo {
    /// The layer has sent media recently.
    pub active: bool,
    /// Its measured bitrate in bits per second (0 while unknown).
    pub bitrate_bps: u64,
    /// Its frame width in pixels, when known from a keyframe; else estimated from the full size.
    pub width: u32,
}

/// The inputs to a layer choice.
#[derive(Debug, Clone, Copy)]
pub struct LayerQuery {
    /// Largest width the subscriber asked for (`u32::MAX` when it did not ask).
    pub max_width: u32,
    /// Bits per second the allocator grants this track.
    pub budget_bps: u64,
    /// Screenshare prefers resolution over frame rate: a layer counts as fitting when the budget
    /// covers half its measured bitrate, since a sharp picture at half the frame rate is better for
    /// text than a blurred one at full rate (the sender's encoder lowers the frame rate when
    /// congested; the SDK marks screen tracks `contentHint = "detail"`).
    pub prefer_resolution: bool,
}

/// Picks the layer to forward: the highest active layer that fits both the requested size and
/// the budget; when none fits the budget, the lowest active layer (a frozen picture is worse than
/// a small one). `None` when no layer is active.
pub fn choose_layer(layers: &[LayerInfo; 3], q: LayerQuery) -> Option<usize> {
    let active: Vec<usize> = (0..3).filter(|i| layers[*i].active).collect();
    let lowest = *active.first()?;
    let fits_size = |i: usize| layers[i].width == 0 || layers[i].width <= q.max_width;
    let need = |i: usize| {
        if q.prefer_resolution {
            layers[i].bitrate_bps / 2
        } else {
            layers[i].bitrate_bps
        }
    };
    let mut best = None;
    for &i in &active {
        if fits_size(i) && need(i) <= q.budget_bps {
            best = Some(i);
        }
    }
    Some(best.unwrap_or(lowest))
}

/// Per-subscriber switching state for one simulcast track.
#[derive(Debug, Clone, Default)]
pub struct LayerSwitch {
    /// Layer being forwarded now.
    pub current: Option<usize>,
    /// Layer we want to move to, waiting for its keyframe.
    pub target: Option<usize>,
}

/// What to do with one incoming frame of a simulcast track, for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerdict {
    /// Forward it.
    Forward,
    /// Forward it: it is the keyframe that completes a switch to its layer.
    ForwardSwitched,
    /// Drop it (another layer, or waiting for a keyframe).
    Drop,
}

impl LayerSwitch {
    /// Sets the layer we want. Returns true when a keyframe of `target` is now needed.
    pub fn set_target(&mut self, target: Option<usize>) -> bool {
        if target == self.current {
            self.target = None;
            return false;
        }
        let changed = self.target != target;
        self.target = target;
        changed && target.is_some()
    }

    /// Decides for a frame of `layer`.
    pub fn on_frame(&mut self, layer: usize, keyframe: bool) -> FrameVerdict {
        if self.target == Some(layer) && keyframe {
            self.current = Some(layer);
            self.target = None;
            return FrameVerdict::ForwardSwitched;
        }
        if self.current == Some(layer) {
            FrameVerdict::Forward
        } else {
            FrameVerdict::Drop
        }
    }

    /// True while a switch waits for a keyframe.
    pub fn waiting(&self) -> bool {
        self.target.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(rates: [u64; 3]) -> [LayerInfo; 3] {
        let w = [320, 640, 1280];
        let mut l = [LayerInfo::default(); 3];
        for i in 0..3 {
            l[i] = LayerInfo {
                active: rates[i] > 0,
                bitrate_bps: rates[i],
                width: w[i],
            };
        }
        l
    }

    fn q(max_width: u32, budget_bps: u64) -> LayerQuery {
        LayerQuery {
            max_width,
            budget_bps,
            prefer_resolution: false,
        }
    }

    #[test]
    fn table_of_choices() {
        let l = layers([150_000, 500_000, 1_500_000]);
        // (max width, budget) -> layer
        let table = [
            (u32::MAX, 10_000_000, Some(2)),
            (u32::MAX, 1_000_000, Some(1)),
            (u32::MAX, 200_000, Some(0)),
            (u32::MAX, 50_000, Some(0)), // nothing fits: lowest, not nothing
            (320, 10_000_000, Some(0)),
            (640, 10_000_000, Some(1)),
            (100, 10_000_000, Some(0)), // smaller than every layer: lowest
        ];
        for (w, b, want) in table {
            assert_eq!(choose_layer(&l, q(w, b)), want, "max_width {w} budget {b}");
        }
    }

    #[test]
    fn inactive_layers_are_skipped() {
        let l = layers([0, 500_000, 0]);
        assert_eq!(choose_layer(&l, q(u32::MAX, 10_000_000)), Some(1));
        assert_eq!(choose_layer(&l, q(u32::MAX, 1)), Some(1));
        assert_eq!(choose_layer(&layers([0, 0, 0]), q(u32::MAX, 1)), None);
    }

    #[test]
    fn screenshare_prefers_resolution() {
        let l = layers([100_000, 400_000, 1_200_000]);
        let pr = LayerQuery {
            max_width: u32::MAX,
            budget_bps: 600_000,
            prefer_resolution: true,
        };
        // A camera with this budget gets h; a screenshare keeps f (half its rate fits).
        assert_eq!(
            choose_layer(
                &l,
                LayerQuery {
                    prefer_resolution: false,
                    ..pr
                }
            ),
            Some(1)
        );
        assert_eq!(choose_layer(&l, pr), Some(2));
        let tight = LayerQuery {
            budget_bps: 300_000,
            ..pr
        };
        assert_eq!(choose_layer(&l, tight), Some(1));
        // With a tiny budget a screenshare still gets the lowest, not nothing.
        let tiny = LayerQuery {
            budget_bps: 1,
            ..pr
        };
        assert_eq!(choose_layer(&l, tiny), Some(0));
    }

    #[test]
    fn switch_waits_for_keyframe_of_target() {
        let mut s = LayerSwitch::default();
        assert!(s.set_target(Some(0)));
        // Before any keyframe nothing is forwarded.
        assert_eq!(s.on_frame(0, false), FrameVerdict::Drop);
        assert_eq!(s.on_frame(0, true), FrameVerdict::ForwardSwitched);
        assert_eq!(s.on_frame(0, false), FrameVerdict::Forward);
        assert_eq!(s.on_frame(2, true), FrameVerdict::Drop);
        // Move up: the old layer keeps flowing until the new keyframe.
        assert!(s.set_target(Some(2)));
        assert!(!s.set_target(Some(2)), "asking again needs no new keyframe");
        assert_eq!(s.on_frame(0, false), FrameVerdict::Forward);
        assert_eq!(s.on_frame(2, false), FrameVerdict::Drop);
        assert_eq!(s.on_frame(2, true), FrameVerdict::ForwardSwitched);
        assert_eq!(s.on_frame(0, false), FrameVerdict::Drop);
        assert!(!s.waiting());
        // Target equal to current cancels a pending switch.
        assert!(s.set_target(Some(1)));
        assert!(!s.set_target(Some(2)));
        assert!(!s.waiting());
    }
}
