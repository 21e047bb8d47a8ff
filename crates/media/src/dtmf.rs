//! DTMF (work in progress).
