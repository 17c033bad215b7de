//! Session stores: Redis (the contract of CONTRACT.md section 4) and memory.
