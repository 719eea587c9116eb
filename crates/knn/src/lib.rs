//! Nearest-neighbour classification for imgclass: exact k-NN over L1/L2 with voting, and approximate indices
pub mod ann;
