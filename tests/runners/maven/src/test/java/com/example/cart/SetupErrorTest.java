package com.example.cart;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** A setup error: the fixture throws before the test can run. */
class SetupErrorTest {
    @BeforeEach
    void connect() {
        throw new IllegalStateException("the fixture could not connect");
    }

    @Test
    void neverGetsToRun() {}
}
