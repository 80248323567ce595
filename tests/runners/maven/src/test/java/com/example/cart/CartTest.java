package com.example.cart;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import org.junit.jupiter.api.Disabled;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Tomato's maven preset suite: every kind of outcome a rerun must handle. */
class CartTest {
    static boolean firstAttempt() {
        String a = System.getenv("TOMATO_ATTEMPT");
        return a == null || a.equals("1");
    }

    @Test
    void passes() {
        System.out.println("output of passes");
    }

    @Test
    void alwaysFails() {
        assertEquals(1, 2, "expected 1 but was 2");
    }

    @Test
    void flaky() {
        assertFalse(firstAttempt(), "fails on the first attempt only");
    }

    @Test
    @Disabled("not today")
    void skipped() {}

    @ParameterizedTest
    @ValueSource(strings = {"with space", "quote \" and ' too", "brackets [x]", "кириллица"})
    void oddParams(String value) {
        assertFalse(firstAttempt(), value);
    }

    @Nested
    class Checkout {
        @Test
        void refundPasses() {}

        @Test
        void refundFlaky() {
            assertFalse(firstAttempt());
        }
    }
}
