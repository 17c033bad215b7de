//! Minting access tokens with the configured signing key (`gateway token`, auth center).
