//! Duration strings: "500ms", "30s", "15m", "2h", "7d".
